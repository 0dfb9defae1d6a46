"""Sleep and wake, as pure rules: which live apps nobody has visited for their `sleep_after`
(judged on the load balancer's per-target-group RequestCount), the record as an app falls asleep
and as a visit wakes it, and what a visit to its address is answered.

An app sleeps only in address mode: its host stays, its rule and target group go (the listener's
catch-all rule sends its visits to the wake function), and the next visit starts it again through
the same launch path as every other launch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from review_apps.durations import format_duration
from review_apps.lifecycle.planning import may_wake
from review_apps.lifecycle.transitions import left_queue, stop_requested
from review_apps.model.record import Record
from review_apps.model.values import Status, StopReason

HISTORY_LINES = 6  # the newest ones; enough to see a day's rhythm on the note
METRIC_PERIOD = 60  # RequestCount comes per minute
METRIC_NAMESPACE = "AWS/ApplicationELB"


def _clock(epoch: int) -> str:
    return f"{(epoch // 3600) % 24:02d}:{(epoch // 60) % 60:02d}"


def sleep_after(spec_value: int | None, install_default: int) -> int:
    return install_default if spec_value is None else spec_value


def candidates(records: list[Record], now: int) -> list[Record]:
    """Live apps that have been awake at least their `sleep_after`: worth asking the metrics."""
    return [
        r
        for r in records
        if r.status == Status.LIVE
        and r.sleep_after
        and r.host
        and r.target_group_arn
        and r.live_at
        and now - r.live_at >= r.sleep_after
    ]


def target_group_dimension(target_group_arn: str) -> str:
    """`targetgroup/<name>/<id>`, as CloudWatch names a target group."""
    return "targetgroup/" + target_group_arn.split(":targetgroup/", 1)[-1]


@dataclass(frozen=True)
class MetricQuery:
    query_id: str
    target_group: str  # the dimension value
    record: Record


def metric_queries(apps: list[Record]) -> list[MetricQuery]:
    return [MetricQuery(f"q{n}", target_group_dimension(r.target_group_arn), r) for n, r in enumerate(apps)]


# How far back an app's last visit is looked for, to say how long it was idle before it slept.
LOOKBACK_SECONDS = 3 * 3600


def window_start(apps: list[Record], now: int) -> int:
    """One GetMetricData call covers every app: back to the earliest time any of them needs, its
    `sleep_after` at least, and since it went live (up to LOOKBACK_SECONDS) to find its last visit."""
    return now - max((max(r.sleep_after, min(now - r.live_at, LOOKBACK_SECONDS)) for r in apps), default=0)


def idle_seconds(query: MetricQuery, requests: dict[str, list[tuple[int, float]]], now: int) -> int:
    """How long the app has had no visit: since its last minute with requests, or since it went
    live (woke) if it had none that recent."""
    visits = [at for at, count in requests.get(query.query_id, []) if count > 0]
    return now - max([query.record.live_at, *visits])


def idle(queries: list[MetricQuery], requests: dict[str, list[tuple[int, float]]], now: int) -> list[Record]:
    """Apps with no request in their last `sleep_after`. `requests`: query id → (epoch, count)
    points; no points means no requests (the ALB publishes RequestCount only when there are some)."""
    sleepy = []
    for query in queries:
        since = now - query.record.sleep_after
        if not any(count > 0 for at, count in requests.get(query.query_id, []) if at >= since):
            sleepy.append(query.record)
    return sleepy


def _with_history(record: Record, line: str) -> list[str]:
    return ([*record.history, line])[-HISTORY_LINES:]


def falling_asleep(record: Record, now: int, idle: int = 0) -> Record:
    """`idle`: seconds without a visit (idle_seconds), said in whole minutes; at least sleep_after."""
    idle_for = format_duration(max(idle // 60 * 60, record.sleep_after))
    asleep = stop_requested(record, StopReason.ASLEEP, now, detail=f"nobody visited it for {idle_for}")
    line = f"slept at {_clock(now)} after {idle_for} idle"
    return dataclasses.replace(asleep, history=_with_history(record, line))


def after_ttl(stopped: Record) -> Record:
    """An app that can sleep does so when its time to live runs out, rather than ending: the TTL
    bounds one awake stretch, and the next visit wakes it. Anything else is left as it is."""
    if not (stopped.stop_reason == StopReason.TTL and stopped.sleep_after and stopped.host and stopped.live_at):
        return stopped
    at = stopped.stopped_at
    return dataclasses.replace(
        stopped,
        status=Status.ASLEEP,
        asleep_since=at,
        expires_at=0,
        history=_with_history(stopped, f"slept at {_clock(at)} when its time to live ran out"),
    )


def ended_asleep(record: Record, reason: StopReason, detail: str, now: int, updated_at: int = 0) -> Record:
    """A sleeping app whose MR merged or closed, or that was stopped: it will not wake again. As
    for an app that leaves the queue, except that it stopped when it fell asleep, not now."""
    return dataclasses.replace(left_queue(record, reason, detail, now, updated_at), stopped_at=record.stopped_at)


def woke(claim: Record, now: int, review_requested: tuple[str, ...] = ()) -> Record:
    """The launch a visit (or a review request) asked for: said on the note's history line."""
    why = f"because {review_words(review_requested)} asked to review" if review_requested else "for a visit"
    return dataclasses.replace(claim, asleep_since=0, history=_with_history(claim, f"woke at {_clock(now)} {why}"))


def review_words(usernames: tuple[str, ...]) -> str:
    """`@rita was`, `@rita and @sam were`, `a reviewer was`: who was asked, for the note. The
    names passed events._username (GitLab's character set), so each is one mention, never markup."""
    names = [f"@{name}" if name else "a reviewer" for name in dict.fromkeys(usernames)]
    if len(names) > 3:
        names = [*names[:3], f"{len(names) - 3} more"]
    said = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    return f"{said} {'was' if len(names) == 1 else 'were'}"


# ---------------------------------------------------------------------- what a visitor is answered


@dataclass(frozen=True)
class WakeAnswer:
    # "waking" (a visit woke it), "starting" (launching, or up but not yet found healthy), "queued",
    # "awake", "failed", "missing", "retry" (could not look just now)
    kind: str
    mr_iid: int = 0
    place: int = 0
    start_seconds: int = 0


def answer_for(record: Record | None, woken: bool = False) -> WakeAnswer:
    """What a visit finds, once any launch it asked for is claimed. `woken`: this visit found the
    app asleep and asked for the launch."""
    if record is None:
        return WakeAnswer("missing")
    iid, usual = record.mr_iid, record.start_seconds
    if may_wake(record) or (woken and record.status == Status.DEPLOYING):
        return WakeAnswer("waking", iid, start_seconds=usual)
    if record.status == Status.DEPLOYING or (record.status == Status.LIVE and record.host and not record.healthy_at):
        return WakeAnswer("starting", iid, start_seconds=usual)
    if record.status == Status.QUEUED:
        return WakeAnswer("queued", iid, place=record.queue_place or 1, start_seconds=usual)
    if record.status == Status.LIVE:
        return WakeAnswer("awake", iid)
    if record.status in (Status.FAILED, Status.REJECTED):
        return WakeAnswer("failed", iid)
    return WakeAnswer("missing")


REFUSAL_MEMORY_SECONDS = 60
REFUSAL_MEMORY_HOSTS = 10_000


class RefusedHosts:
    """Hosts whose visit found no app to wake, remembered for a minute: a crawler hammering an
    ended app's address costs neither a GitLab call nor a table read per request. Bounded: the
    oldest are forgotten first. One per WakeFunction container."""

    def __init__(self) -> None:
        self._until: dict[str, float] = {}

    def refused(self, host: str, now: float) -> bool:
        until = self._until.get(host)
        if until is not None and until <= now:
            del self._until[host]
            return False
        return until is not None

    def remember(self, host: str, now: float) -> None:
        self._until.pop(host, None)
        self._until[host] = now + REFUSAL_MEMORY_SECONDS
        while len(self._until) > REFUSAL_MEMORY_HOSTS:
            del self._until[next(iter(self._until))]

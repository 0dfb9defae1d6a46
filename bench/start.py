"""Time to address: from an MR event to its https address answering, as the MR shows it, and the
part of it our functions add. Address mode, through the real handlers; ECS's and the ALB's own
times are those of a real task's state-change events (ECS's sample payload: 17.7 s to the pull,
3 s pulling, 3 s starting) and two 10-second health checks, played on a moved clock."""

from __future__ import annotations

import re
import statistics
import time
from datetime import UTC, datetime, timedelta

from local.world import PROJECT_ID, REVIEW_DOMAIN, World

ITERATIONS = 15
SPEC = "task_definition: shop-web\ntrigger: merge_request\nhealth_check: /healthz\n"
# Seconds after the MR event, as a real task reports them (events/task_running.json).
TIMELINE = {"createdAt": 0.4, "connectivityAt": 4.5, "pullStartedAt": 18.1, "pullStoppedAt": 21.1, "startedAt": 24.1}
HEALTHY_AFTER_STARTED = 20  # two passing checks, 10 s apart (HealthyThresholdCount 2, interval 10 s)
_ANSWERED = re.compile(r"The address answered (\S+) after the merge request event")


def _timed(call) -> float:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def _seconds(text: str) -> int:
    return sum(int(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in re.findall(r"(\d+)([hms])", text))


def time_to_address(world: World) -> dict:
    import time_machine

    world.hold_health_checks()  # as a real ALB: a new target is `initial` until its checks pass
    shown, webhook, running, health = [], [], [], []
    for iid in range(1, ITERATIONS + 1):
        sha = f"{iid:040x}"
        world.commit(sha, spec=SPEC)
        world.gitlab.state.open_merge_request(PROJECT_ID, iid, sha=sha, source_branch=f"feature/{iid}")
        event_at = datetime.now(UTC)
        webhook.append(_timed(lambda: world.send_mr(iid, "open", updated_at=event_at)))
        task = world.record(iid)["task_arn"]
        timeline = {name: event_at + timedelta(seconds=s) for name, s in TIMELINE.items()}
        with time_machine.travel(timeline["startedAt"], tick=True):
            running.append(_timed(lambda: world.task_event(task, "RUNNING", timeline=timeline)))
        host = f"awesome-project-mr{iid}-p{PROJECT_ID}.{REVIEW_DOMAIN}"
        with time_machine.travel(timeline["startedAt"] + timedelta(seconds=HEALTHY_AFTER_STARTED), tick=True):
            world.first_checks_pass()
            health.append(_timed(lambda: world.visit(host)))  # a reviewer's reload finds it healthy
        assert world.route(host) is not None, "the host got no rule of its own"
        answered = _ANSWERED.search(world.note(iid) or "")
        shown.append(_seconds(answered.group(1)) if answered else -1)
        world.send_mr(iid, "close")
    return {
        "iterations": ITERATIONS,
        "shown_p50": statistics.median(shown),
        "ecs_and_alb": TIMELINE["startedAt"] + HEALTHY_AFTER_STARTED,
        "webhook_p50": statistics.median(webhook),
        "running_p50": statistics.median(running),
        "health_p50": statistics.median(health),
    }


REVIEW_SPEC = "task_definition: shop-web\ntrigger: merge_request\nhealth_check: /healthz\nsleep_after: 15m\n"
OPENS_AFTER = 60  # the reviewer opens the app a minute after being asked


def _asleep(world: World, iid: int) -> str:
    sha = f"{iid:040x}"
    world.commit(sha, spec=REVIEW_SPEC)
    world.gitlab.state.open_merge_request(PROJECT_ID, iid, sha=sha, source_branch=f"feature/{iid}")
    world.send_mr(iid, "open")
    task = world.record(iid)["task_arn"]
    world.task_event(task, "RUNNING")
    world.first_checks_pass()
    world.live_for(iid, 20)
    world.reconcile()
    world.stopped_as_asked(task)
    assert world.record(iid)["status"] == "asleep"
    return f"awesome-project-mr{iid}-p{PROJECT_ID}.{REVIEW_DOMAIN}"


def _starts(world: World, iid: int, at: datetime) -> None:
    """ECS starts the woken task on the real timeline from `at` (the ALB's checks pass
    HEALTHY_AFTER_STARTED later: the callers say when that moment has come)."""
    import time_machine

    timeline = {name: at + timedelta(seconds=s) for name, s in TIMELINE.items()}
    with time_machine.travel(timeline["startedAt"], tick=True):
        world.task_event(world.record(iid)["task_arn"], "RUNNING", timeline=timeline)


def review_request_head_start(world: World) -> dict:
    """A sleeping app's reviewer: asked to review (the hook wakes it), opening it a minute later,
    against opening it unasked (the visit wakes it). Each wait is from the visit to the app
    answering through its own rule, on ECS's and the ALB's real timeline (moved clock)."""
    import time_machine

    world.hold_health_checks()
    asked, unasked, woken_by_hook, rates = [], [], 0, []
    rita = {"id": 61, "name": "Rita", "username": "rita", "state": "unreviewed", "re_requested": False}
    for n in range(ITERATIONS // 3):
        # Unasked: the reviewer's visit finds it asleep and waits for the start and two checks.
        host = _asleep(world, 2 * n + 1)
        visit_at = datetime.now(UTC)
        world.visit(host)
        _starts(world, 2 * n + 1, visit_at)
        for wait in range(0, 600, 5):  # the waking page reloads every 5 s until the app answers
            if wait >= TIMELINE["startedAt"] + HEALTHY_AFTER_STARTED:
                world.first_checks_pass()
            with time_machine.travel(visit_at + timedelta(seconds=wait), tick=True):
                world.visit(host)  # the waking page, or the health look that gives the host its rule
                if world.route(host) is not None:
                    unasked.append(wait)
                    break
        # Asked: the hook wakes it; the reviewer opens it a minute later.
        host = _asleep(world, 2 * n + 2)
        asked_at = datetime.now(UTC)
        answer = world.send_mr(2 * n + 2, "update", reviewers=[rita], previous_reviewers=[])
        woken_by_hook += answer["status"] == 202
        _starts(world, 2 * n + 2, asked_at)
        with time_machine.travel(asked_at + timedelta(seconds=OPENS_AFTER), tick=True):
            world.first_checks_pass()  # OPENS_AFTER is past the start and the two checks
            world.reconcile()  # its minute: the health look gives the healthy app its own rule
            asked.append(0 if world.route(host) is not None else OPENS_AFTER)
        rates.append(int(world.record(2 * n + 2)["rate_microusd"]) / 1e6)
    return {
        "pairs": len(asked),
        "woken_by_hook": woken_by_hook,
        "asked_wait_p50": statistics.median(asked),
        "unasked_wait_p50": statistics.median(unasked),
        "rate_per_hour": statistics.median(rates),
        "sleep_after_minutes": 15,
    }

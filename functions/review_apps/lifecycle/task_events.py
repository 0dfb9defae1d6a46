"""What happens when a task changes state: RUNNING makes the app live, STOPPED says why it went."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from review_apps.events import TaskEvent
from review_apps.lifecycle.routing import Ignore
from review_apps.lifecycle.transitions import expiry
from review_apps.model.record import Record
from review_apps.model.values import ACTIVE, REQUESTED_STOPS, Status, StopReason

# The reason the deadline's schedule gives StopTask, so a stop at the deadline reads as one.
DEADLINE_STOP_REASON = "Review app reached its deadline (time to live ended)"


TTL_EXIT_CODE = 124  # GNU/BusyBox `timeout` when the limit expires


KILLED_EXIT_CODE = 137  # `timeout -k` had to SIGKILL an app that ignored SIGTERM


@dataclass(frozen=True)
class WentLive:
    pass


@dataclass(frozen=True)
class Stopped:
    pass


@dataclass(frozen=True)
class PhaseChanged:
    phase: str


# What a starting task is doing, in the order it does it: a phase only ever moves forward.
PHASES = ("capacity", "pulling", "starting")
_DOING = {"capacity": "waiting for Fargate capacity", "pulling": "pulling its image", "starting": "starting"}


def phase_of(event: TaskEvent) -> str:
    """What the task is doing now, from its state and its pull timestamps."""
    if event.last_status == "ACTIVATING" or event.pull_stopped_at:
        return "starting"
    if event.pull_started_at:
        return "pulling"
    return "capacity"


def needs_tag_check(event: TaskEvent, record: Record | None) -> bool:
    """An event for a task the record does not hold yet (its launch is being recorded) is believed
    only if the task carries this install's tags: anyone who may run tasks in the cluster can
    give one the MR's group and startedBy."""
    return (
        record is not None
        and not record.task_arn
        and bool(event.started_by)
        and event.started_by == record.launch_id
        and event.task_arn != record.task_arn
    )


def on_task_event(
    event: TaskEvent, record: Record | None, tagged: bool = False
) -> Ignore | WentLive | Stopped | PhaseChanged:
    """`tagged`: the task carries this install's and this MR's tags (asked only when needs_tag_check)."""
    if record is None:
        return Ignore("no review app is recorded for this task's merge request")
    if event.task_arn != record.task_arn and not (needs_tag_check(event, record) and tagged):
        return Ignore("task is not the merge request's current review app")
    if record.status not in ACTIVE:
        return Ignore(f"review app is already {record.status}")
    if event.version <= record.event_version:
        return Ignore(f"event version {event.version} is not newer than {record.event_version}")
    if event.last_status == "STOPPED":
        return Stopped()
    if event.last_status == "RUNNING" and record.status == Status.DEPLOYING:
        return WentLive()
    if event.last_status in ("PROVISIONING", "PENDING", "ACTIVATING") and record.status == Status.DEPLOYING:
        if event.task_arn != record.task_arn:
            # Its launch is still recording the task: a write now would make that launch lose its
            # conditional write (and stop the app as superseded). A phase is worth no such risk.
            return Ignore("the task's launch is still being recorded")
        phase = phase_of(event)
        if record.phase and PHASES.index(phase) <= PHASES.index(record.phase):
            return Ignore(f"the task is still {_DOING[phase]}: nothing new for the merge request")  # one edit a phase
        return PhaseChanged(phase)
    return Ignore(f"task state {event.last_status} changes nothing on the merge request")


def app_url(private_ip: str | None, public_ip: str | None, port: int, want_public: bool) -> tuple[str, str]:
    """(url, caveat). A missing public IP is said out loud rather than silently swapped."""
    if want_public and public_ip:
        return f"http://{public_ip}:{port}", ""
    if not private_ip:
        return "", "ECS reported no IP address for the task"
    caveat = ""
    if want_public:
        caveat = "No public IP was assigned (is the subnet public?); this address works only inside the VPC."
    return f"http://{private_ip}:{port}", caveat


def _epoch(moment: object) -> int:
    return int(moment.timestamp()) if hasattr(moment, "timestamp") else 0


def starting(record: Record, event: TaskEvent, phase: str) -> Record:
    return dataclasses.replace(
        record,
        phase=phase,
        event_version=event.version,
        task_created_at=_epoch(event.created_at) or record.task_created_at,
        pull_started_at=_epoch(event.pull_started_at) or record.pull_started_at,
        pull_stopped_at=_epoch(event.pull_stopped_at) or record.pull_stopped_at,
    )


def went_live(
    record: Record, event: TaskEvent, *, url: str, url_note: str, now: int, routed_target: str = ""
) -> Record:
    """`routed_target`: the `ip:port` now registered behind the MR's host (address mode)."""
    started = int(event.started_at.timestamp()) if event.started_at else now
    return dataclasses.replace(
        record,
        routed_target=routed_target or record.routed_target,
        first_live_at=record.first_live_at or started,
        start_seconds=started - record.launched_at if record.launched_at and started > record.launched_at else 0,
        status=Status.LIVE,
        phase="",
        health_note="",  # a new task: its health is checked anew
        task_arn=event.task_arn,
        event_version=event.version,
        task_created_at=_epoch(event.created_at) or record.task_created_at,
        pull_started_at=_epoch(event.pull_started_at) or record.pull_started_at,
        pull_stopped_at=_epoch(event.pull_stopped_at) or record.pull_stopped_at,
        live_at=started,
        deadline=started + record.ttl_seconds,
        url=url,
        url_note=url_note,
    )


def explain_stop(event: TaskEvent, record: Record, now: int) -> tuple[StopReason, str]:
    """(StopReason, detail in plain words) for a STOPPED task event."""
    app = event.container(record.container) if record.container else None
    exit_code = app.exit_code if app else None
    ecs_reason = (event.stopped_reason or "").strip()
    if event.stop_code in ("SpotInterruption", "TerminationNotice"):
        return StopReason.SPOT, "AWS reclaimed the Fargate Spot capacity it was running on"
    if record.status == Status.STOPPING and record.stop_reason:
        return record.stop_reason, record.stop_detail
    if event.stop_code == "TaskFailedToStart" or (
        exit_code is None and ecs_reason.startswith(("CannotPull", "ResourceInitializationError", "CannotStart"))
    ):
        return StopReason.FAILED_TO_START, ecs_reason or "ECS gave no reason"
    if ecs_reason.startswith(DEADLINE_STOP_REASON) or exit_code == TTL_EXIT_CODE:
        return StopReason.TTL, ""
    if exit_code == KILLED_EXIT_CODE and now >= record.deadline:
        return StopReason.TTL, "the app ignored SIGTERM and was killed"
    if event.stop_code == "UserInitiated":
        return StopReason.STOPPED_OUTSIDE, ecs_reason or "stopped through the ECS API or console"
    if exit_code is not None:
        container = app.name if app else "app"
        detail = f"container `{container}` exited with code {exit_code}"
        if ecs_reason:
            detail += f" ({ecs_reason})"
        return StopReason.CRASHED, detail
    return StopReason.UNKNOWN, ecs_reason or "ECS gave no reason"


def stopped(record: Record, event: TaskEvent, now: int) -> Record:
    """The record once its task has stopped. The STOPPED event says on its own whether the app
    ever started (`startedAt`), so the outcome is the same whether or not RUNNING came first."""
    reason, detail = explain_stop(event, record, now)
    at = int(event.stopped_at.timestamp()) if event.stopped_at else now
    live_at = record.live_at or (int(event.started_at.timestamp()) if event.started_at else 0)
    status = Status.STOPPED if live_at or reason in REQUESTED_STOPS else Status.FAILED
    url = record.url
    if live_at and not url and event.private_ip and record.port:
        url = f"http://{event.private_ip}:{record.port}"
    awake = max(at - live_at, 0) if live_at else 0
    asleep = reason == StopReason.ASLEEP
    return dataclasses.replace(
        record,
        status=Status.ASLEEP if asleep else status,
        asleep_since=at if asleep else 0,
        awake_seconds=record.awake_seconds + awake,
        awake_cost_microusd=record.awake_cost_microusd + round(record.rate_microusd * awake / 3600),
        awake_counted_until=max(at, record.awake_counted_until) if live_at else record.awake_counted_until,
        first_live_at=record.first_live_at or live_at,
        start_seconds=record.start_seconds or (live_at - record.launched_at if 0 < record.launched_at < live_at else 0),
        task_arn=event.task_arn,
        event_version=event.version,
        live_at=live_at,
        deadline=live_at + record.ttl_seconds if live_at else record.deadline,
        url=url,
        stopped_at=at,
        stop_reason=reason,
        stop_detail=detail,
        # A sleeping app's record lives as long as its MR: a visit must still find it.
        expires_at=0 if asleep else expiry(now),
    )

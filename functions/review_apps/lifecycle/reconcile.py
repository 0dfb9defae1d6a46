"""Reconcile plans: the backstop, as pure decisions: compare what runs in the cluster with what the records say.

Events can be lost (a DLQ'd delivery, a bug, an outage), `timeout` can be missing from an
image, and a Lambda can die between two calls. Every few minutes ReconcileFunction looks at
the whole picture and `plan` says what to heal:
- stop tasks whose deadline has come (this is how a TTL ends: see taskdef's two clocks), and
  tasks no record owns;
- check active records whose task is no longer running (and finish them);
- re-publish MR views that did not reach GitLab;
- retire derived task definitions no active record uses;
- give a running app whose deadline has no schedule a new one, stop again a task that still runs
  well after it was asked to stop, and bring live a deploying app whose RUNNING event was lost;
- carry out deliveries that were kept because GitLab or AWS failed when they came;
- correct the running-slot sets where they disagree with the records (caps turned on while
  apps ran; a table edited by hand). Launches and stops keep them right by themselves.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from review_apps.events import parse_group
from review_apps.lifecycle.queue import Caps, slot_scopes
from review_apps.messages import needs_publish
from review_apps.model.record import Record
from review_apps.model.values import Status
from review_apps.taskdef import review_family

# A launch claimed this long ago without a task was interrupted (the Lambda died mid-way); one
# whose task runs this long after the claim without the record knowing lost its RUNNING event.
LAUNCH_GRACE_SECONDS = 120
# A task still running this long after we asked it to stop is asked again (StopTask is idempotent;
# the first ask may have been throttled or lost).
STOP_AGAIN_SECONDS = 120


@dataclass(frozen=True)
class RunningTask:
    task_arn: str
    group: str
    started_by: str
    task_definition_arn: str
    last_status: str = ""


@dataclass(frozen=True)
class StopTask:
    task: RunningTask
    reason: str
    record: Record | None  # the owner, whose record should say why (None for orphans)


@dataclass
class Plan:
    stop: list[StopTask] = field(default_factory=list)
    check: list[Record] = field(default_factory=list)  # active, but their task is not running
    republish: list[Record] = field(default_factory=list)
    retire: list[str] = field(default_factory=list)  # task definition ARNs
    # Running apps whose deadline has no schedule (it could not be made, or was lost): make it.
    reschedule: list[Record] = field(default_factory=list)
    # Tasks asked to stop over STOP_AGAIN_SECONDS ago that still run: ask again.
    stop_again: list[StopTask] = field(default_factory=list)
    # Deploying records whose task ECS describes as RUNNING: the RUNNING event was lost.
    went_live: list[tuple[Record, RunningTask]] = field(default_factory=list)
    # Deliveries kept when GitLab or AWS failed, newest first.
    kept: list[Record] = field(default_factory=list)


def _owner(task: RunningTask, records: dict[tuple[int, int], Record]) -> Record | None:
    mr = parse_group(task.group)
    record = records.get(mr) if mr else None
    if record is None or not record.active:
        return None
    if task.task_arn == record.task_arn or (task.started_by and task.started_by == record.launch_id):
        return record
    return None


def plan(
    tasks: list[RunningTask],
    records: list[Record],
    active_definitions: list[str],
    now: int,
    install: str,
    scheduled: set[tuple[int, int]] | None = None,
) -> Plan:
    """`scheduled`: the MRs whose deadline schedule exists (None: unknown, nothing rescheduled)."""
    by_mr = {(r.project_id, r.mr_iid): r for r in records}
    result = Plan()
    owned: set[tuple[int, int]] = set()
    for task in tasks:
        owner = _owner(task, by_mr)
        if owner is None:
            result.stop.append(StopTask(task, "Review app task has no merge request that owns it (reconciler)", None))
            continue
        key = (owner.project_id, owner.mr_iid)
        owned.add(key)
        if owner.status == Status.STOPPING:
            if now - owner.stopping_since >= STOP_AGAIN_SECONDS:
                result.stop_again.append(StopTask(task, _stop_again_reason(owner), owner))
        elif owner.deadline and now >= owner.deadline:
            result.stop.append(StopTask(task, "Review app reached the end of its time to live", owner))
        elif scheduled is not None and key not in scheduled and task.task_arn == owner.task_arn:
            result.reschedule.append(owner)
        if (
            owner.status == Status.DEPLOYING
            and task.last_status == "RUNNING"
            and task.task_arn == owner.task_arn
            and now >= owner.launched_at + LAUNCH_GRACE_SECONDS
        ):
            result.went_live.append((owner, task))
    result.kept = sorted((r for r in records if r.pending_ask), key=lambda r: (-r.pending_at, r.key))

    for record in records:
        key = (record.project_id, record.mr_iid)
        if record.active and key not in owned:
            if record.task_arn or now > record.launched_at + LAUNCH_GRACE_SECONDS:
                result.check.append(record)
        elif needs_publish(record) and not record.pending_ask and (record.status or record.last_command):
            # A kept ask publishes once carried out; a bare record it left (nothing to do) has nothing to say.
            result.republish.append(record)

    in_use = {r.task_definition_arn for r in records if r.active and r.task_definition_arn}
    # A launch registers its definition a moment before it records it: leave those MRs alone.
    launching = {review_family(install, r.project_id, r.mr_iid) for r in records if r.status == Status.DEPLOYING}
    result.retire = [arn for arn in active_definitions if arn not in in_use and _family(arn) not in launching]
    return result


def _stop_again_reason(record: Record) -> str:
    return f"Review app stopped ({record.stop_reason or 'asked'}; asked again by the reconciler)"


def families_in_use(records: list[Record], install: str) -> set[str]:
    """Task-definition families of apps that may run: not listed each run (their revisions are
    retired when the app stops), so the listing costs calls per leftover, not per open MR."""
    return {review_family(install, r.project_id, r.mr_iid) for r in records if r.active}


def _family(task_definition_arn: str) -> str:
    return task_definition_arn.rsplit("/", 1)[-1].rsplit(":", 1)[0]


@dataclass(frozen=True)
class SlotCorrection:
    scope: str
    mr: str  # "project/iid"
    hold: bool  # add the MR to the scope's set, or take it out
    record: Record | None  # the record whose unchanged state justifies it (None: there is none)


def slot_corrections(records: list[Record], holders: dict[str, set[str]], caps: Caps) -> list[SlotCorrection]:
    """Running apps missing from a slot set, and set members whose app is not running.
    `holders` maps each scope of `caps` (for every project with records) to its set."""
    by_key = {r.key: r for r in records}
    fixes = []
    for record in records:
        for scope, _ in slot_scopes(caps, record.project_id):
            if record.active and record.key not in holders.get(scope, set()):
                fixes.append(SlotCorrection(scope, record.key, True, record))
    for scope, members in sorted(holders.items()):
        for key in sorted(members):
            holder = by_key.get(key)
            if holder is None or not holder.active:
                fixes.append(SlotCorrection(scope, key, False, holder))
    return fixes

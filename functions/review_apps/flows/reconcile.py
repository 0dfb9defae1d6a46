"""The every-minute backstop: gather the picture (running tasks of this install, every record,
this install's task definitions), let lifecycle.reconcile plan, carry the plan out, then start
queued apps that fit. Every write is conditional and every ECS call idempotent, so two runs at
once are harmless: the loser of a race skips that record until the next run."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

from review_apps import lifecycle
from review_apps.adapters.elb import NoRoute
from review_apps.adapters.scheduler import parse_schedule_name
from review_apps.adapters.store import Conflict
from review_apps.events import task_from_description
from review_apps.flows import routes
from review_apps.flows.commands import run_command
from review_apps.flows.deploy import Deployer
from review_apps.flows.outcome import Result
from review_apps.flows.sleep import put_idle_apps_to_sleep
from review_apps.flows.task_events import on_task_event
from review_apps.lifecycle import addresses, kept
from review_apps.lifecycle import reconcile as plans
from review_apps.messages import needs_publish
from review_apps.model.record import Record
from review_apps.model.values import Slot, Status, StopReason


def reconcile(deployer: Deployer) -> dict[str, Any]:
    """AWS-only steps first (stops, deadlines, lost events, sleep, routes, slots), then GitLab's
    (notes, kept deliveries, the queue): a GitLab outage must not keep an app running past its
    time. Each item is guarded on its own, and no step starts once the invocation's time is up."""
    services = deployer.services
    now = int(time.time())
    described = services.ecs.review_app_tasks()
    tasks = [
        plans.RunningTask(
            t["taskArn"], t.get("group", ""), t.get("startedBy", ""), t["taskDefinitionArn"], t.get("lastStatus", "")
        )
        for t in described
    ]
    records = services.store.all()
    install = services.settings.install_id
    definitions = services.ecs.derived_definitions(skip=plans.families_in_use(records, install))
    plan = plans.plan(tasks, records, definitions, now, install, _scheduled(deployer))
    run = _Run(deployer)
    summary = run.summary
    summary.update(tasks=len(tasks), records=len(records))

    for stop in plan.stop:
        run.each("stop", _stop_overdue, stop)
    for stop in plan.stop_again:
        run.each("stop again", _stop_again, stop)
    for record in plan.check:
        run.each("finish", _finish_one, record, now)
    for record in plan.reschedule:
        run.each("reschedule", _reschedule, record)
    descriptions = {t["taskArn"]: t for t in described}
    for record, task in plan.went_live:
        run.each("went live", _went_live, record, descriptions[task.task_arn])
    for arn in plan.retire:
        run.each("retire", _retire, arn)

    if plan.check or plan.stop or plan.went_live:  # this run moved records on: look again
        records = services.store.all()
    # Failures here are logged and retried next run: the queue below must still start apps.
    if services.settings.sleep_enabled and services.settings.wake_target_group_arn:
        run.step("sleep", lambda: put_idle_apps_to_sleep(deployer, records, now))
    if services.settings.address_mode:
        # Before the queue: a route swept here is room on the load balancer for a queued app.
        run.step("route sweep", lambda: _sweep_routes(deployer, records, now))
        # Apps this run put to sleep have no target left to look at: read the records again then.
        awake = services.store.all() if summary.get("put_to_sleep") else records
        run.step("health check", lambda: _look_at_health(run, awake))
    run.step("slot correction", lambda: {"slots_corrected": _correct_slots(deployer, records)})

    # GitLab from here on: the MR views this run changed or that did not reach GitLab before,
    # deliveries kept in an outage (newest first), then the queue.
    for key in dict.fromkeys(r.key for r in [*run.to_publish, *plan.republish]):
        run.each("republish", _republish, key, gitlab=True)
    for record in plan.kept:
        run.each("kept delivery", _carry_out, record, gitlab=True)
    if run.may_go_on(gitlab=True):
        # Kept deliveries may have queued MRs since the records were read: read the queue again then.
        summary["started_from_queue"] = deployer.start_queued(None if plan.kept else records)
    if services.gitlab_unwell:
        summary["gitlab_unwell"] = services.gitlab_unwell
    return summary


class _Run:
    """One reconciler run: its counts, the MR views to publish once the AWS steps are done, and
    the guard every item and step goes through."""

    def __init__(self, deployer: Deployer) -> None:
        self.deployer = deployer
        self.to_publish: list[Record] = []
        self.summary: dict[str, Any] = {
            "stopped": 0,
            "finished": 0,
            "republished": 0,
            "retired": 0,
            "rescheduled": 0,
            "stopped_again": 0,
            "went_live": 0,
            "kept_carried_out": 0,
            "skipped": 0,
            "failed": 0,
            "started_from_queue": 0,
            "out_of_time": 0,
        }

    def may_go_on(self, gitlab: bool = False) -> bool:
        """False once the invocation's time is nearly up (counted once per item not started), or,
        for GitLab work, once GitLab has failed in this run."""
        services = self.deployer.services
        left = services.seconds_left()
        if left is not None and left < MIN_STEP_SECONDS:
            self.summary["out_of_time"] += 1
            return False
        return not (gitlab and services.gitlab_unwell)

    def each(self, what: str, act: Callable[..., object], *args: Any, gitlab: bool = False) -> None:
        """`act(self, *args)` for one item, unless time (or GitLab) is up; a failure is counted."""
        if not self.may_go_on(gitlab):
            return
        try:
            act(self, *args)
        except Exception:
            self.summary["failed"] += 1
            self.deployer.logger.exception(f"reconciler: {what} failed; the next run tries again")

    def step(self, what: str, act: Callable[[], dict[str, int]]) -> None:
        if not self.may_go_on():
            return
        try:
            self.summary.update(act())
        except Exception:
            self.deployer.logger.exception(f"the {what} failed; the next run tries again")
            self.summary[f"{what.replace(' ', '_')}_failed"] = 1

    def save(self, record: Record, before: Record | None = None) -> Record | None:
        """Write `record` (and queue its MR view for the GitLab part of the run); None if someone
        else moved it on meanwhile (skipped until the next run)."""
        store = self.deployer.services.store
        try:
            saved = store.save(record, lifecycle.slot_change(before, record) if before else Slot.NONE)
        except Conflict:
            self.summary["skipped"] += 1
            return None
        if before is not None:
            self.to_publish.append(saved)
        return saved


# Below this many seconds left in the budget (which already keeps the handler's reserve), no
# further item is started.
MIN_STEP_SECONDS = 2.0


def _scheduled(deployer: Deployer) -> set[tuple[int, int]] | None:
    """The MRs whose deadline schedule exists, or None if Scheduler can't say (then nothing is
    rescheduled this run, and the deadline still holds through the stop step)."""
    try:
        names = deployer.services.scheduler.all_names()
    except Exception:
        deployer.logger.exception("could not list the deadline schedules; the next run looks again")
        return None
    return {mr for mr in map(parse_schedule_name, names) if mr is not None}


def _stop_overdue(run: _Run, stop: plans.StopTask) -> None:
    deployer = run.deployer
    if stop.record is not None:
        stopping = run.save(lifecycle.stop_requested(stop.record, StopReason.TTL, int(time.time())), stop.record)
        if stopping is None:
            return
    deployer.services.ecs.stop(stop.task.task_arn, stop.reason)
    if stop.record is not None:
        deployer.clear_deadline(stop.record)
    run.summary["stopped"] += 1
    deployer.logger.info("stopped task", extra={"task_arn": stop.task.task_arn, "reason": stop.reason})


def _stop_again(run: _Run, stop: plans.StopTask) -> None:
    run.deployer.services.ecs.stop(stop.task.task_arn, stop.reason)
    run.summary["stopped_again"] += 1
    run.deployer.logger.warning(
        "a task asked to stop still ran: asked again", extra={"task_arn": stop.task.task_arn, "mr": stop.record}
    )


def _finish_one(run: _Run, record: Record, now: int) -> None:
    finished = _finish(run.deployer, record, now)
    if finished is not None and run.save(finished, before=record) is not None:
        if finished.task_definition_arn:
            run.deployer.services.ecs.retire(finished.task_definition_arn)
        run.deployer.clear_deadline(finished)
        run.summary["finished"] += 1


def _reschedule(run: _Run, record: Record) -> None:
    """A running app whose deadline has no schedule gets one (its deadline is still ahead: one
    that has passed is stopped instead, in plan.stop)."""
    if not run.deployer.set_deadline(record, new=True):
        raise RuntimeError("the deadline's schedule could not be made")
    run.summary["rescheduled"] += 1
    run.deployer.logger.warning("made a running app's missing deadline schedule", extra={"mr": record.key})
    if record.deadline_unscheduled:
        run.save(dataclasses.replace(record, deadline_unscheduled=False), before=record)


def _went_live(run: _Run, record: Record, described: dict[str, Any]) -> None:
    """The RUNNING event was lost: the task's description says the same, so it is applied as one."""
    event = task_from_description(described, record.event_version + 1)
    outcome = on_task_event(run.deployer, event, (record.project_id, record.mr_iid))
    if outcome.result == Result.UPDATED:
        run.summary["went_live"] += 1
        run.deployer.logger.warning("brought live an app whose RUNNING event was lost", extra={"mr": record.key})


def _retire(run: _Run, arn: str) -> None:
    run.deployer.services.ecs.retire(arn)
    run.summary["retired"] += 1


def _carry_out(run: _Run, record: Record) -> None:
    """A delivery kept during an outage, done now; forgotten once done (or once it is no ask of
    ours). A failure keeps it for the next run."""
    deployer = run.deployer
    ask = kept.unkeep(record.pending_ask)
    if isinstance(ask, lifecycle.StopApp):
        outcome = deployer.stop(ask)
    elif isinstance(ask, lifecycle.Command):
        outcome = run_command(deployer, ask)
    elif isinstance(ask, lifecycle.ConsiderDeploy):
        outcome = deployer.consider(ask, None)  # GitLab says what the MR is now
    else:
        outcome = None
    deployer.services.store.drop_kept(record)
    run.summary["kept_carried_out"] += 1
    deployer.logger.info(
        "carried out a kept delivery", extra={"mr": record.key, "outcome": outcome.message if outcome else "unreadable"}
    )


def _correct_slots(deployer: Deployer, records: list[Record]) -> int:
    services, settings = deployer.services, deployer.services.settings
    caps = lifecycle.Caps(settings.max_running, settings.max_running_per_project)
    scopes = {scope for r in records for scope, _ in lifecycle.slot_scopes(caps, r.project_id)}
    holders = {scope: services.store.holders(scope) for scope in scopes}
    corrected = 0
    for fix in plans.slot_corrections(records, holders, caps):
        if services.store.correct_slot(fix.scope, fix.mr, fix.hold, fix.record):
            corrected += 1
            deployer.logger.warning(
                "running slots disagreed with the records", extra={"scope": fix.scope, "mr": fix.mr, "hold": fix.hold}
            )
    return corrected


def _finish(deployer: Deployer, record: Record, now: int) -> Record | None:
    """The record once its missing task is accounted for; None while the task is still stopping."""
    if not record.task_arn:
        return lifecycle.vanished(record, now)
    described = deployer.services.ecs.describe(record.task_arn)
    if described is None:
        return lifecycle.vanished(record, now)
    event = task_from_description(described, record.event_version + 1)
    decision = lifecycle.on_task_event(event, record)
    if isinstance(decision, lifecycle.Stopped):
        return lifecycle.stopped(record, event, now)
    return None


def _republish(run: _Run, key: str) -> None:
    """The MR's view as the record is now: steps earlier in this run may have moved it on (a
    snapshot from the run's start would put an older view back on the MR)."""
    project_id, mr_iid = (int(part) for part in key.split("/"))
    record = run.deployer.services.store.get(project_id, mr_iid)
    if record is not None and needs_publish(record):
        run.deployer.publish(record, strict=True)
        run.summary["republished"] += 1


def _look_at_health(run: _Run, records: list[Record]) -> dict[str, int]:
    """One DescribeTargetHealth per live app with a target: the first healthy look gives its host
    its own rule; a failing check is said on the MR in words (and taken back once it passes)."""
    counts = {"health_notes_changed": 0, "found_healthy": 0}
    for record in records:
        if record.status != Status.LIVE or not (record.target_group_arn and record.routed_target):
            continue
        if not run.may_go_on():
            break
        looked = routes.look_at_health(run.deployer.services.elb, record)
        if looked != record and run.save(looked, before=record) is not None:
            counts["health_notes_changed"] += looked.health_note != record.health_note
            counts["found_healthy"] += looked.healthy_at != record.healthy_at
    return counts


def _sweep_routes(deployer: Deployer, records: list[Record], now: int) -> dict[str, int]:
    """Delete what no record wants on the load balancer, and make what a record wants and lacks."""
    services, logger = deployer.services, deployer.logger
    elb, store = services.elb, services.store
    found = elb.routes()
    plan = addresses.plan_routes(found, records, now)
    counts = {"routes_removed": 0, "routes_repaired": 0}
    for extra in plan.remove:
        extra = addresses.leftovers(extra, store.get(*extra.mr))  # the record may have moved on since
        if not (extra.target_group_arn or extra.rule_arns):
            continue
        elb.remove_route(extra.target_group_arn, extra.rule_arns)
        counts["routes_removed"] += 1
        logger.info("removed load balancer leftovers of an app", extra={"mr": extra.mr})
    for rule, target in plan.resign:  # the install's sign-in changed: every kept rule follows it
        elb.forward(rule, target)
        counts["rules_resigned"] = counts.get("rules_resigned", 0) + 1
    there = {route.mr: route for route in found}
    for stale in plan.repair:
        record = store.get(stale.project_id, stale.mr_iid)  # this run may have put it to sleep since
        if record is None or record.rev != stale.rev:
            continue  # moved on: its own flow settles it, or the next run looks again
        route = there.get((record.project_id, record.mr_iid))
        known = dataclasses.replace(
            record,
            target_group_arn=route.target_group_arn if route else "",
            rule_arn=record.rule_arn if route and record.rule_arn in route.rule_arns else "",
            routed_target=record.routed_target or _live_target(deployer, record),
        )
        try:
            repaired = routes.settle(elb, known)
        except NoRoute as refused:
            logger.warning(
                "a running app's route is missing and can't be made", extra={"mr": record.key, "why": str(refused)}
            )
            continue
        try:
            store.save(repaired)
        except Conflict:
            continue  # moved on meanwhile; its own flow or the next run routes it
        counts["routes_repaired"] += 1
        logger.warning("made a running app's missing route again", extra={"mr": record.key})
    return counts


def _live_target(deployer: Deployer, record: Record) -> str:
    if record.status != Status.LIVE or not record.task_arn:
        return ""
    described = deployer.services.ecs.describe(record.task_arn)
    event = task_from_description(described, record.event_version) if described else None
    return f"{event.private_ip}:{record.port}" if event and event.private_ip else ""

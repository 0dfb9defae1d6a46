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
from review_apps.adapters.store import Conflict
from review_apps.events import task_from_description
from review_apps.flows import routes
from review_apps.flows.deploy import Deployer
from review_apps.flows.sleep import put_idle_apps_to_sleep
from review_apps.lifecycle import addresses
from review_apps.lifecycle import reconcile as plans
from review_apps.model.record import Record
from review_apps.model.values import Slot, Status, StopReason


def reconcile(deployer: Deployer) -> dict[str, Any]:
    services, logger = deployer.services, deployer.logger
    now = int(time.time())
    tasks = [
        plans.RunningTask(t["taskArn"], t.get("group", ""), t.get("startedBy", ""), t["taskDefinitionArn"])
        for t in services.ecs.review_app_tasks()
    ]
    records = services.store.all()
    install = services.settings.install_id
    definitions = services.ecs.derived_definitions(skip=plans.families_in_use(records, install))
    plan = plans.plan(tasks, records, definitions, now, install)
    summary = {
        "tasks": len(tasks),
        "records": len(records),
        "stopped": 0,
        "finished": 0,
        "republished": 0,
        "retired": 0,
        "skipped": 0,
        "failed": 0,
    }

    for stop in plan.stop:
        if stop.record is not None and not _save(
            deployer, lifecycle.stop_requested(stop.record, StopReason.TTL), summary
        ):
            continue
        services.ecs.stop(stop.task.task_arn, stop.reason)
        if stop.record is not None:
            deployer.clear_deadline(stop.record)
        summary["stopped"] += 1
        logger.info("stopped task", extra={"task_arn": stop.task.task_arn, "reason": stop.reason})

    for record in plan.check:
        finished = _finish(deployer, record, now)
        if finished is not None and _save(deployer, finished, summary, before=record):
            if finished.task_definition_arn:
                services.ecs.retire(finished.task_definition_arn)
            deployer.clear_deadline(finished)
            summary["finished"] += 1

    for record in plan.republish:
        if _republish(deployer, record, summary):
            summary["republished"] += 1

    for arn in plan.retire:
        services.ecs.retire(arn)
        summary["retired"] += 1

    if plan.check or plan.stop or plan.republish:  # this run moved records on: look again
        records = services.store.all()
    # Failures here are logged and retried next run: the queue below must still start apps.
    if services.settings.sleep_enabled and services.settings.wake_target_group_arn:
        summary.update(_guarded(deployer, "sleep", lambda: put_idle_apps_to_sleep(deployer, records, now)))
    if services.settings.address_mode:
        # Before the queue: a route swept here is room on the load balancer for a queued app.
        summary.update(_guarded(deployer, "route sweep", lambda: _sweep_routes(deployer, records, now)))
        # Apps this run put to sleep have no target left to look at: read the records again then.
        awake = services.store.all() if summary.get("put_to_sleep") else records
        summary.update(_guarded(deployer, "health check", lambda: _look_at_health(deployer, awake, summary)))
    summary["slots_corrected"] = _correct_slots(deployer, records)
    summary["started_from_queue"] = deployer.start_queued(records)
    return summary


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


def _save(deployer: Deployer, record: Record, summary: dict[str, Any], before: Record | None = None) -> bool:
    """Write `record`; a record someone else moved on meanwhile is skipped until the next run."""
    try:
        saved = deployer.services.store.save(record, lifecycle.slot_change(before, record) if before else Slot.NONE)
    except Conflict:
        summary["skipped"] += 1
        return False
    if before is not None:
        _republish(deployer, saved, summary)
    return True


def _republish(deployer: Deployer, record: Record, summary: dict[str, Any]) -> bool:
    try:
        deployer.publish(record, strict=True)
    except Exception:
        summary["failed"] += 1
        deployer.logger.exception("could not update the merge request; the next run retries", extra={"mr": record.key})
        return False
    return True


def _guarded(deployer: Deployer, step: str, run: Callable[[], dict[str, int]]) -> dict[str, int]:
    try:
        return run()
    except Exception:
        deployer.logger.exception(f"the {step} failed; the next run tries again")
        return {f"{step.replace(' ', '_')}_failed": 1}


def _look_at_health(deployer: Deployer, records: list[Record], summary: dict[str, Any]) -> dict[str, int]:
    """One DescribeTargetHealth per live app with a target: the first healthy look gives its host
    its own rule; a failing check is said on the MR in words (and taken back once it passes)."""
    counts = {"health_notes_changed": 0, "found_healthy": 0}
    for record in records:
        if record.status != Status.LIVE or not (record.target_group_arn and record.routed_target):
            continue
        looked = routes.look_at_health(deployer.services.elb, record)
        if looked != record and _save(deployer, looked, summary, before=record):
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

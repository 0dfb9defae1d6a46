"""ReconcileFunction: every minute, end apps whose time is up, start queued apps that fit, and
make the cluster, the records and GitLab agree.

What to heal is decided in review_apps.reconcile (pure); this handler gathers the picture
(running review-app tasks, all MR records, active derived task definitions) and carries the
plan out. Every write is conditional and every ECS call idempotent, so two runs at once are
harmless: the loser of a race skips that record until the next run.
"""

from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools import Logger

from review_apps import lifecycle, reconcile
from review_apps.adapters.store import Conflict
from review_apps.deploy import Deployer
from review_apps.models import Record, task_from_description
from review_apps.services import Services
from review_apps.settings import load_settings

logger = Logger(service="review-apps-reconciler")
services = Services(load_settings())
deployer = Deployer(services, logger)


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict, context: Any) -> dict:
    now = int(time.time())
    tasks = [
        reconcile.RunningTask(t["taskArn"], t.get("group", ""), t.get("startedBy", ""), t["taskDefinitionArn"])
        for t in services.ecs.review_app_tasks()
    ]
    records = services.store.all()
    plan = reconcile.plan(tasks, records, services.ecs.derived_definitions(), now, services.settings.install_id)
    summary = {"tasks": len(tasks), "records": len(records), "stopped": 0, "finished": 0, "republished": 0,
               "retired": 0, "skipped": 0, "failed": 0}

    for stop in plan.stop:
        if stop.record is not None and not _save_or_skip(
            lifecycle.stop_requested(stop.record, lifecycle.StopReason.TTL), summary
        ):
            continue
        services.ecs.stop(stop.task.task_arn, stop.reason)
        if stop.record is not None:
            deployer.clear_deadline(stop.record)
        summary["stopped"] += 1
        logger.info("stopped task", extra={"task_arn": stop.task.task_arn, "reason": stop.reason})

    for record in plan.check:
        finished = _finish(record, now)
        if finished is not None and _save_or_skip(finished, summary, publish=True, before=record):
            if finished.task_definition_arn:
                services.ecs.retire(finished.task_definition_arn)
            deployer.clear_deadline(finished)
            summary["finished"] += 1

    for record in plan.republish:
        if _publish(record, summary):
            summary["republished"] += 1

    for arn in plan.retire:
        services.ecs.retire(arn)
        summary["retired"] += 1

    if plan.check or plan.stop or plan.republish:  # this run moved records on: look again
        records = services.store.all()
    summary["slots_corrected"] = _correct_slots(records)
    summary["started_from_queue"] = deployer.start_queued(records)

    logger.info("reconciled", extra=summary)
    return summary


def _correct_slots(records: list[Record]) -> int:
    settings = services.settings
    caps = lifecycle.Caps(settings.max_running, settings.max_running_per_project)
    scopes = {scope for r in records for scope, _ in lifecycle.slot_scopes(caps, r.project_id)}
    holders = {scope: services.store.holders(scope) for scope in scopes}
    corrected = 0
    for fix in reconcile.slot_corrections(records, holders, caps):
        if services.store.correct_slot(fix.scope, fix.mr, fix.hold, fix.record):
            corrected += 1
            logger.warning("running slots disagreed with the records", extra={"scope": fix.scope, "mr": fix.mr,
                                                                                "hold": fix.hold})
    return corrected


def _finish(record: Record, now: int) -> Record | None:
    """The record once its missing task is accounted for; None while the task is still stopping."""
    if not record.task_arn:
        return lifecycle.vanished(record, now)
    described = services.ecs.describe(record.task_arn)
    if described is None:
        return lifecycle.vanished(record, now)
    event = task_from_description(described, record.event_version + 1)
    decision = lifecycle.on_task_event(event, record)
    if isinstance(decision, lifecycle.Stopped):
        return lifecycle.stopped(record, event, now)
    return None


def _save_or_skip(record: Record, summary: dict, publish: bool = False, before: Record | None = None) -> bool:
    try:
        saved = services.store.save(record, lifecycle.slot_change(before, record) if before else lifecycle.Slot.NONE)
    except Conflict:
        summary["skipped"] += 1  # someone else moved this MR on; the next run looks again
        return False
    if publish:
        _publish(saved, summary)
    return True


def _publish(record: Record, summary: dict) -> bool:
    try:
        published = services.gitlab.publish(record)
    except Exception:
        summary["failed"] += 1
        logger.exception("could not update the merge request; the next run retries", extra={"mr": record.key})
        return False
    try:
        services.store.save(published)
    except Conflict:
        summary["skipped"] += 1
    return True

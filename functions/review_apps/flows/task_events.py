"""A task changed state: what it means is decided in lifecycle.task_events; this records it,
moves or deletes the deadline's schedule, cleans up, and tells the MR. Failures raise, so
EventBridge's retries and the dead-letter queue keep the event."""

from __future__ import annotations

import time

from review_apps import lifecycle
from review_apps.events import TaskEvent
from review_apps.flows.deploy import Deployer
from review_apps.flows.outcome import Outcome, Result
from review_apps.flows.retry import until_written
from review_apps.messages import needs_publish
from review_apps.model.record import Record


def on_task_event(deployer: Deployer, task: TaskEvent, mr: tuple[int, int]) -> Outcome:
    return until_written(lambda: _once(deployer, task, mr), f"the record for {mr}")


def _once(deployer: Deployer, task: TaskEvent, mr: tuple[int, int]) -> Outcome:
    services = deployer.services
    record = services.store.get(*mr)
    decision = lifecycle.on_task_event(task, record)
    if isinstance(decision, lifecycle.Ignore):
        if record is not None:
            _publish(deployer, record)  # heal an MR update that failed on an earlier delivery
        return Outcome.ignored(decision.reason)
    assert record is not None  # on_task_event ignores events for MRs without a record
    now = int(time.time())
    if isinstance(decision, lifecycle.WentLive):
        public_ip = None
        if services.settings.assign_public_ip and task.eni_id:
            public_ip = services.ecs.public_ip(task.eni_id)
        url, caveat = lifecycle.app_url(task.private_ip, public_ip, record.port, services.settings.assign_public_ip)
        updated = lifecycle.went_live(record, task, url=url, url_note=caveat, now=now)
    else:
        updated = lifecycle.stopped(record, task, now)
    saved = services.store.save(updated, lifecycle.slot_change(record, updated))
    if isinstance(decision, lifecycle.Stopped):
        deployer.clear_deadline(saved)
        if saved.task_definition_arn:
            services.ecs.retire(saved.task_definition_arn)
    elif saved.deadline != record.deadline:
        deployer.set_deadline(saved)  # the TTL counts from when the app went live
    _publish(deployer, saved)
    deployer.logger.info("merge request updated", extra={"status": saved.status, "reason": saved.stop_reason})
    return Outcome(Result.UPDATED, str(saved.status), {"mr": saved.key})


def _publish(deployer: Deployer, record: Record) -> None:
    if needs_publish(record):  # else the MR shows it already: no token read, no GitLab client, no call
        deployer.publish(record, strict=True)

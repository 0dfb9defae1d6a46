"""TaskEventsFunction: ECS Task State Change → the merge request's note, environment,
deployment and commit status.

What a RUNNING or STOPPED event means is decided in review_apps.lifecycle
(`on_task_event`, `went_live`, `stopped`, `explain_stop`); this handler fetches what those
need (the record, a public IP) and publishes the result. Failures raise, so EventBridge's
async retries and the dead-letter queue keep the event.
"""

from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools import Logger

from review_apps import lifecycle
from review_apps.adapters.store import Conflict
from review_apps.deploy import Deployer
from review_apps.messages import needs_publish
from review_apps.models import Record, parse_group, parse_task_event
from review_apps.services import Services
from review_apps.settings import load_settings

ATTEMPTS = 3

logger = Logger(service="review-apps-task-events")
services = Services(load_settings())
deployer = Deployer(services, logger)


def _ours(cluster_arn: str) -> bool:
    wanted = services.settings.cluster
    return cluster_arn == wanted or cluster_arn.endswith(f":cluster/{services.settings.cluster_name}")


@logger.inject_lambda_context(correlation_id_path="id", clear_state=True)
def handler(event: dict, context: Any) -> dict:
    task = parse_task_event(event)
    mr = parse_group(task.group)
    if mr is None or not _ours(task.cluster_arn):
        return _ignored(f"task group '{task.group}' on {task.cluster_arn} is not a review app of this install")
    logger.append_keys(mr=f"{mr[0]}/{mr[1]}", task_arn=task.task_arn, last_status=task.last_status)

    for _ in range(ATTEMPTS):
        record = services.store.get(*mr)
        decision = lifecycle.on_task_event(task, record)
        if isinstance(decision, lifecycle.Ignore):
            if record is not None:
                _publish(record)  # heal an MR update that failed on an earlier delivery
            return _ignored(decision.reason)
        now = int(time.time())
        if isinstance(decision, lifecycle.WentLive):
            public_ip = None
            if services.settings.assign_public_ip and task.eni_id:
                public_ip = services.ecs.public_ip(task.eni_id)
            url, caveat = lifecycle.app_url(
                task.private_ip, public_ip, record.port, services.settings.assign_public_ip
            )
            updated = lifecycle.went_live(record, task, url=url, url_note=caveat, now=now)
        else:
            updated = lifecycle.stopped(record, task, now)
        try:
            saved = services.store.save(updated, lifecycle.slot_change(record, updated))
        except Conflict:
            continue
        if isinstance(decision, lifecycle.Stopped):
            deployer.clear_deadline(saved)
            if saved.task_definition_arn:
                services.ecs.retire(saved.task_definition_arn)
        elif saved.deadline != record.deadline:
            deployer.set_deadline(saved)  # the TTL counts from when the app went live
        _publish(saved)
        logger.info("merge request updated", extra={"status": saved.status, "reason": saved.stop_reason})
        return {"result": saved.status, "mr": saved.key}
    raise Conflict(f"record for {mr} kept changing; EventBridge will retry this event")


def _publish(record: Record) -> None:
    if not needs_publish(record):
        return  # the MR already shows this record: no token read, no GitLab client, no call
    published = services.gitlab.publish(record)  # raises: Lambda retries the event
    if published != record:
        try:
            services.store.save(published)
        except Conflict:
            logger.info("record changed while publishing; the newer writer publishes its own view")


def _ignored(reason: str) -> dict:
    logger.info("ignored", extra={"reason": reason})
    return {"result": "ignored", "reason": reason}

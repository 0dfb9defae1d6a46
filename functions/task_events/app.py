"""TaskEventsFunction: ECS Task State Change → the merge request's note, environment,
deployment and commit status.

Parse → flow → answer: what a RUNNING or STOPPED task means is decided in
review_apps.lifecycle.task_events and carried out by review_apps.flows.task_events. Failures
raise, so EventBridge's async retries and the dead-letter queue keep the event.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger

from review_apps.events import parse_group, parse_task_event
from review_apps.flows.deploy import Deployer
from review_apps.flows.outcome import Result
from review_apps.flows.task_events import on_task_event
from review_apps.services import Services
from review_apps.settings import load_settings

logger = Logger(service="review-apps-task-events")
services = Services(load_settings())
deployer = Deployer(services, logger)


def _ours(cluster_arn: str) -> bool:
    wanted = services.settings.cluster
    return cluster_arn == wanted or cluster_arn.endswith(f":cluster/{services.settings.cluster_name}")


@logger.inject_lambda_context(correlation_id_path="id", clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    services.budget(context)
    task = parse_task_event(event)
    mr = parse_group(task.group)
    if mr is None or not _ours(task.cluster_arn):
        return _ignored(f"task group '{task.group}' on {task.cluster_arn} is not a review app of this install")
    logger.append_keys(mr=f"{mr[0]}/{mr[1]}", task_arn=task.task_arn, last_status=task.last_status)
    outcome = on_task_event(deployer, task, mr)
    if outcome.result == Result.IGNORED:
        return _ignored(outcome.message.removeprefix("ignored: "))
    return {"result": outcome.message, "mr": outcome.details["mr"]}


def _ignored(reason: str) -> dict[str, Any]:
    logger.info("ignored", extra={"reason": reason})
    return {"result": "ignored", "reason": reason}

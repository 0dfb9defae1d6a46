"""CleanupFunction: the custom resource that makes `sam delete` leave nothing behind. On Delete it
removes this install's tasks, schedules, routes and task definitions (review_apps.flows.cleanup)
before the stack's own resources go, and always answers CloudFormation before its own timeout,
so a delete never waits an hour on an answer that will not come.

The answer is FAILED only while one of this install's tasks still runs (it would cost money with
no deadline left to stop it); the stack then stays, saying which, and `sam delete` again retries.
Anything else left (a rule, a revision) is named in a SUCCESS answer and in the logs."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

from aws_lambda_powertools import Logger

from review_apps.flows.cleanup import clean_up
from review_apps.services import Services
from review_apps.settings import load_settings

logger = Logger(service="review-apps-cleanup")
SAFETY_SECONDS = 20  # kept back to send the answer


def _answer(event: dict[str, Any], status: str, reason: str, data: dict[str, Any] | None = None) -> None:
    body = json.dumps(
        {
            "Status": status,
            "Reason": reason[:3800],  # CloudFormation shows at most 4 KB
            "PhysicalResourceId": event.get("PhysicalResourceId") or f"{event.get('LogicalResourceId', 'Cleanup')}",
            "StackId": event.get("StackId", ""),
            "RequestId": event.get("RequestId", ""),
            "LogicalResourceId": event.get("LogicalResourceId", ""),
            "Data": data or {},
        }
    ).encode()
    # A pre-signed S3 URL: the signature covers an empty Content-Type.
    request = urllib.request.Request(event["ResponseURL"], data=body, method="PUT", headers={"Content-Type": ""})
    with urllib.request.urlopen(request, timeout=10) as answer:
        answer.read()


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> None:
    kind = event.get("RequestType")
    if kind != "Delete":
        _answer(event, "SUCCESS", f"{kind}: nothing to do until the stack is deleted")
        return
    try:
        services = Services(load_settings())
        report = clean_up(services, logger, lambda: context.get_remaining_time_in_millis() / 1000 - SAFETY_SECONDS)
    except Exception as exc:  # the answer must go out whatever happened, or CloudFormation waits an hour
        logger.exception("clean-up failed")
        _answer(event, "FAILED", f"Clean-up could not run ({type(exc).__name__}: {exc}); run sam delete again.")
        return
    logger.info("cleaned up", extra={"done": report.done, "left": report.left})
    status = "FAILED" if report.tasks_left else "SUCCESS"
    reason = report.summary() + (" Tasks still run: stop them, or run sam delete again." if report.tasks_left else "")
    _answer(event, status, reason, {k: str(v) for k, v in report.done.items()})

"""ReconcileFunction: every minute, end apps whose time is up, start queued apps that fit, and
make the cluster, the records and GitLab agree.

Parse → flow → answer: what to heal is planned in review_apps.lifecycle.reconcile (pure) and
carried out by review_apps.flows.reconcile.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger

from review_apps.flows.deploy import Deployer
from review_apps.flows.reconcile import reconcile
from review_apps.services import Services
from review_apps.settings import load_settings

RESERVE_SECONDS = 10.0
logger = Logger(service="review-apps-reconciler")
services = Services(load_settings())
deployer = Deployer(services, logger)


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    # GitLab calls end RESERVE_SECONDS before the timeout, and each step stops starting work then.
    services.budget(context, reserve_seconds=RESERVE_SECONDS)
    summary = reconcile(deployer)
    logger.info("reconciled", extra=summary)
    return summary

"""WakeFunction: the load balancer's Lambda target for sleeping apps' hosts. A visit starts the
app again and is answered at once with a page that says so (or its place in the queue, or 404).

Parse → flow → answer: only the request's Host header is read; review_apps.flows.sleep finds the
MR behind it and launches through the same path as every other launch; review_apps.pages says it.
"""

from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools import Logger

from review_apps import pages
from review_apps.flows.deploy import Deployer
from review_apps.flows.sleep import wake
from review_apps.lifecycle.addresses import normalize_host
from review_apps.lifecycle.sleep import RefusedHosts, WakeAnswer
from review_apps.services import Services
from review_apps.settings import load_settings

logger = Logger(service="review-apps-wake")
services = Services(load_settings(), in_request_path=True)  # a visitor is waiting: short timeouts
deployer = Deployer(services, logger)


def _host(event: dict[str, Any]) -> str:
    headers = event.get("headers") or {}
    if isinstance(headers, dict) and isinstance(headers.get("host"), str):
        return headers["host"][:300]
    multi = event.get("multiValueHeaders") or {}  # when the target group turns multi-value headers on
    values = multi.get("host") if isinstance(multi, dict) else None
    return values[0][:300] if isinstance(values, list) and values and isinstance(values[0], str) else ""


refused = RefusedHosts()


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    host = normalize_host(_host(event if isinstance(event, dict) else {}))
    services.budget(context)
    try:
        if not host or refused.refused(host, time.time()):
            answer = WakeAnswer("missing")
        else:
            answer = wake(deployer, host)
            if answer.kind == "missing":
                refused.remember(host, time.time())
    except Exception:  # GitLab or AWS trouble (a 429 too): the page retries, as does the visitor's next reload
        logger.exception("could not wake the app")
        answer = WakeAnswer("retry")
    logger.info("visit answered", extra={"host": host[:100], "answer": answer.kind, "mr_iid": answer.mr_iid})
    return pages.render(answer)

"""WebhookFunction: GitLab merge request, pipeline and comment events → launch or stop review apps.

Parse → flow → answer: authenticate and parse the request, route the event (lifecycle), carry
it out once per delivery (review_apps.flows), and turn the flow's Outcome into HTTP. This file
owns only the HTTP side: the rules live in review_apps.lifecycle, the steps in review_apps.flows.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

import gitlab
import requests
from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from botocore.exceptions import BotoCoreError, ClientError

from review_apps import auth, lifecycle
from review_apps.adapters.gitlab import rate_limited
from review_apps.adapters.store import Conflict
from review_apps.events import BadEvent, GitLabEvent, MergeRequestEvent, parse_gitlab_event
from review_apps.flows.commands import run_command
from review_apps.flows.deploy import Deployer
from review_apps.flows.outcome import Outcome, Result
from review_apps.lifecycle import kept
from review_apps.services import Services
from review_apps.settings import load_settings

MAX_BODY_BYTES = 5 * 1024 * 1024  # GitLab MR payloads with long descriptions stay well below this
DELIVERY_MEMORY_SECONDS = 24 * 3600  # "Resend request" within a day replays the first answer

logger = Logger(service="review-apps-webhook")
app = APIGatewayHttpResolver()
services = Services(load_settings(), in_request_path=True)
deployer = Deployer(services, logger)


class TooLarge(Exception):
    pass


def _answer(status: int, message: str, headers: dict[str, str] | None = None, **extra: Any) -> Response:
    return Response(status, "application/json", json.dumps({"message": message, **extra}), headers=headers)


def _raw_body() -> bytes:
    raw = app.current_event.body or ""
    if app.current_event.is_base64_encoded:
        try:
            data = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            raise BadEvent("the body is marked base64 but is not valid base64") from None
    else:
        data = raw.encode()
    if len(data) > MAX_BODY_BYTES:
        raise TooLarge
    return data


@dataclass(frozen=True)
class _Parsed:
    """The body as JSON and as a GitLab event, or what to answer with 400."""

    payload: Any = None
    event: GitLabEvent | None = None
    problem: str = ""


def _parse(body: bytes) -> _Parsed:
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return _Parsed(problem=f"the body is not JSON ({exc.__class__.__name__}): send GitLab's webhook payload")
    try:
        return _Parsed(payload, parse_gitlab_event(payload))
    except BadEvent as exc:
        return _Parsed(payload, problem=str(exc))


def _claimed_project(parsed: _Parsed) -> int | None:
    """The target project a payload speaks for, read only to pick the project token to check."""
    mr = getattr(parsed.event, "mr", None)
    if mr is not None:
        return int(mr.project_id)
    if parsed.event is None:
        return None
    project = parsed.payload.get("project") if isinstance(parsed.payload, dict) else None
    project_id = project.get("id") if isinstance(project, dict) else None
    return project_id if isinstance(project_id, int) and not isinstance(project_id, bool) else None


def _authenticate(headers: dict[str, str], body: bytes, parsed: Callable[[], _Parsed]) -> tuple[str | None, int | None]:
    """(what is wrong, None) or (None, the project a project token limits the request to;
    None for the install's secret). Checked before anything else; the body is parsed only when
    a project token has to be matched to the project it names."""
    settings = services.settings
    given = headers.get("x-gitlab-token") or ""
    secret = services.secret(settings.webhook_secret_parameter)
    scope: int | None = None
    if not auth.token_matches(given, secret):
        claimed = _claimed_project(parsed()) if given else None
        version = services.store.token_version(claimed) if claimed is not None else 0
        if claimed is None or not auth.token_matches(given, auth.project_token(secret, claimed, version)):
            return (
                "missing or wrong X-Gitlab-Token: use the install's secret (system and group hooks) or "
                "this project's own token (README, Security)"
            ), None
        scope = claimed
    if settings.webhook_signing_secret_parameter:
        key = auth.signing_key(services.secret(settings.webhook_signing_secret_parameter))
        problem = auth.signature_problem(headers, body, key, int(time.time()))
        if problem:
            return f"signing token check failed: {problem}", None
    return None, scope


def _scope_problem(payload: Any, event: Any, scope: int) -> str | None:
    """A project token speaks for its project only, in every field that names one."""
    project = payload.get("project") if isinstance(payload, dict) else None
    named = {project.get("id")} if isinstance(project, dict) and "id" in project else set()
    mr = getattr(event, "mr", None)
    if mr is not None:
        named.add(mr.project_id)
    if named != {scope}:
        return f"this token speaks for project {scope} only, and the event names another project"
    return None


def _delivery_key(headers: dict[str, str], body: bytes) -> str:
    """With signing on, the signed webhook-id names the delivery (an unsigned header could be
    changed to replay one). Otherwise GitLab ≥ 17.4 sends the same Idempotency-Key on every
    retry and resend; for older GitLab the event itself identifies the delivery."""
    if services.settings.webhook_signing_secret_parameter and headers.get("webhook-id"):
        return "signed:" + headers["webhook-id"][:200]
    given = headers.get("idempotency-key")
    if given:
        return "key:" + given[:200]
    digest = hashlib.sha256((headers.get("x-gitlab-event") or "").encode() + b"\n" + body).hexdigest()
    return "body:" + digest


@app.post("/webhook")
def receive() -> Response:
    headers = app.current_event.headers
    body: bytes | BadEvent | None
    try:
        body = _raw_body()
    except TooLarge:
        body = None
    except BadEvent as exc:
        body = exc
    raw = body if isinstance(body, bytes) else b""
    parsed = cache(lambda: _parse(raw))  # at most once per request, and only when needed
    problem, scope = _authenticate(headers, raw, parsed)
    if problem:
        logger.warning("unauthenticated request", extra={"reason": problem})
        return _answer(401, problem)
    if body is None:
        return _answer(413, f"body is larger than {MAX_BODY_BYTES} bytes")
    if isinstance(body, BadEvent):
        return _answer(400, str(body))
    request = parsed()
    if request.event is None:
        return _answer(400, request.problem)
    payload, event = request.payload, request.event
    if scope is not None and (problem := _scope_problem(payload, event, scope)):
        logger.warning("project token used for another project", extra={"reason": problem})
        return _answer(401, problem)

    route = lifecycle.route_gitlab_event(event)
    if not isinstance(route, lifecycle.Ignore):
        route = lifecycle.admitted(route.mr, services.settings.project_allowlist) or route
    if isinstance(route, lifecycle.Ignore):
        logger.info("ignored", extra={"reason": route.reason})
        return _answer(200, f"ignored: {route.reason}")
    logger.append_keys(mr=route.mr.key)
    # What a project's own hook says about its MR is only a hint: the deploy flow asks GitLab.
    state = event.state if isinstance(event, MergeRequestEvent) and scope is None else None
    try:
        if isinstance(route, lifecycle.StopApp):
            # A stop is idempotent by itself (a second one finds the app stopping already), so it
            # needs no delivery memory: two DynamoDB writes saved on every merge and close.
            outcome = deployer.stop(route)
        else:
            outcome = _once_per_delivery(_delivery_key(headers, body), route, state)
    except _DEPENDENCY_ERRORS as failure:
        outcome = _keep(route, failure)
    return _answer(HTTP_STATUS.get(outcome.result, 200), outcome.message, **outcome.details)


def _keep(route: lifecycle.StopApp | lifecycle.ConsiderDeploy | lifecycle.Command, failure: Exception) -> Outcome:
    """GitLab or AWS failed while serving the delivery: keep what it asked on the MR's record for
    the reconciler, and tell GitLab it is taken (GitLab does not resend by itself, and turns a
    hook off after four failures in a row). Only if the ask can't be kept either does it fail."""
    logger.warning("delivery failed; keeping it for the reconciler", extra={"error": repr(failure)[:500]})
    text = kept.keep(route)
    if not text:
        raise failure
    try:
        newest = services.store.keep(text, kept.when(route, int(time.time())), (route.mr.project_id, route.mr.iid))
    except Exception:
        logger.exception("could not keep the delivery either")
        raise failure from None
    who = "GitLab" if isinstance(failure, gitlab.exceptions.GitlabError | requests.RequestException) else "AWS"
    what = "GitLab is rate-limiting this install's bot (429)" if rate_limited(failure) else f"{who} failed"
    message = (
        f"kept: {what} while this was handled; the install carries it out within minutes, once {who} answers"
        if newest
        else "kept: a newer request for this merge request is kept already and carried out instead"
    )
    return Outcome(Result.KEPT, message)


RATE_LIMIT_RETRY_SECONDS = 60  # GitLab's rate limits are per minute
# What GitLab is told: 202 when something was set in motion, 200 for everything else we handled.
HTTP_STATUS = {
    Result.DEPLOYING: 202,
    Result.QUEUED: 202,
    Result.POSTPONED: 202,
    Result.STOPPING: 202,
    Result.IN_PROGRESS: 202,
    Result.KEPT: 202,
}


def _once_per_delivery(key: str, route: lifecycle.ConsiderDeploy | lifecycle.Command, state: str | None) -> Outcome:
    """Run the delivery once; a redelivery with the same key gets the first answer back."""
    from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyAlreadyInProgressError

    act, config = _idempotent_act()
    config.register_lambda_context(app.lambda_context)
    try:
        return Outcome.from_dict(act(delivery={"key": key}, route=route, state=state))
    except IdempotencyAlreadyInProgressError:
        return Outcome(Result.IN_PROGRESS, "this delivery is already being handled")


@lru_cache(maxsize=1)
def _idempotent_act() -> tuple[Any, Any]:
    # Imported on first use: the idempotency utility is the heaviest import here, and
    # ignored events and rejected requests never need it.
    from aws_lambda_powertools.utilities.idempotency import (
        DynamoDBPersistenceLayer,
        IdempotencyConfig,
        idempotent_function,
    )
    from aws_lambda_powertools.utilities.idempotency.exceptions import (
        IdempotencyItemAlreadyExistsError,
        IdempotencyItemNotFoundError,
    )

    class OwnWritesCount(DynamoDBPersistenceLayer):
        """A claim whose answer was lost (and that botocore sent again) finds itself in progress:
        if the stored claim is this very one (same expiry, to the millisecond of the in-progress
        one), it is ours, not another delivery's."""

        def _put_record(self, data_record: Any) -> None:
            try:
                super()._put_record(data_record)
            except IdempotencyItemAlreadyExistsError as exc:
                stored = exc.old_data_record
                if stored is None:
                    try:
                        stored = self._get_record(data_record.idempotency_key)
                    except IdempotencyItemNotFoundError:
                        raise exc from None
                if not (
                    stored.status == data_record.status
                    and stored.expiry_timestamp == data_record.expiry_timestamp
                    and stored.in_progress_expiry_timestamp == data_record.in_progress_expiry_timestamp
                ):
                    raise

    persistence = OwnWritesCount(
        table_name=services.settings.table_name,
        key_attr="pk",
        expiry_attr="expires_at",
        boto3_client=services.aws("dynamodb"),
    )
    config = IdempotencyConfig(event_key_jmespath="key", expires_after_seconds=DELIVERY_MEMORY_SECONDS)
    act = idempotent_function(data_keyword_argument="delivery", persistence_store=persistence, config=config)(_act)
    return act, config


def _act(delivery: dict[str, str], route: lifecycle.ConsiderDeploy | lifecycle.Command, state: str | None) -> dict:
    if isinstance(route, lifecycle.Command):
        return run_command(deployer, route).as_dict()
    return deployer.consider(route, state).as_dict()


_DEPENDENCY_ERRORS = (BotoCoreError, ClientError, gitlab.exceptions.GitlabError, requests.RequestException, Conflict)


@app.not_found
def _no_such_route(exc: Exception) -> Response:
    return _answer(404, "no such route: GitLab webhooks go to POST /webhook")


@app.exception_handler(Exception)
def _failed(exc: Exception) -> Response:
    """Only our side fails here: client mistakes were answered above with a 4xx."""
    logger.exception("delivery failed")
    if rate_limited(exc):
        return _answer(
            503,
            "GitLab is rate-limiting this install's bot (429); nothing was half-done that a resend won't fix",
            headers={"Retry-After": str(RATE_LIMIT_RETRY_SECONDS)},
        )
    if isinstance(exc, _DEPENDENCY_ERRORS):
        return _answer(502, "GitLab or AWS did not answer in time; nothing was half-done that a resend won't fix")
    return _answer(500, "internal error; the logs have the details under this delivery's id")


@logger.inject_lambda_context(
    correlation_id_path='headers."idempotency-key" || headers."x-gitlab-event-uuid"', clear_state=True
)
def handler(event: dict, context: Any) -> dict:
    services.budget(context)
    return app.resolve(event, context)

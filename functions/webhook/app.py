"""WebhookFunction: GitLab merge request, pipeline and comment events → launch or stop review apps.

The flow: authenticate → parse → route (lifecycle) → read record and spec → plan (lifecycle)
→ carry out the plan (ECS, DynamoDB) → publish to the MR. The rules live in
review_apps.lifecycle; this file only does what they decide.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import json
import time
from functools import lru_cache
from typing import Any

import gitlab
import requests
from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from botocore.exceptions import BotoCoreError, ClientError

from review_apps import auth, compose, cost, lifecycle, taskdef
from review_apps.adapters.ecs import TaskDefinitionNotFound
from review_apps.adapters.gitlab import NoAccess
from review_apps.adapters.store import Conflict
from review_apps.models import BadEvent, MergeRequestEvent, MergeRequestRef, Record, parse_gitlab_event
from review_apps.services import Services
from review_apps.settings import load_settings
from review_apps.spec import SPEC_PATH, SpecProblems, parse_spec, placeholder_values

MAX_BODY_BYTES = 5 * 1024 * 1024  # GitLab MR payloads with long descriptions stay well below this
CLAIM_ATTEMPTS = 3
DELIVERY_MEMORY_SECONDS = 24 * 3600  # "Resend request" within a day replays the first answer

logger = Logger(service="review-apps-webhook")
app = APIGatewayHttpResolver()
services = Services(load_settings(), in_request_path=True)


class TooLarge(Exception):
    pass


def _answer(status: int, message: str, **extra: Any) -> Response:
    return Response(status, "application/json", json.dumps({"message": message, **extra}))


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


def _authentication_problem(headers: dict[str, str], body: bytes) -> str | None:
    """Checked before anything else: a stranger's request costs one cached secret read."""
    settings = services.settings
    if not auth.token_matches(headers.get("x-gitlab-token") or "", services.secret(settings.webhook_secret_parameter)):
        return "missing or wrong X-Gitlab-Token: set the webhook's secret token to the install's secret"
    if settings.webhook_signing_secret_parameter:
        key = auth.signing_key(services.secret(settings.webhook_signing_secret_parameter))
        problem = auth.signature_problem(headers, body, key, int(time.time()))
        if problem:
            return f"signing token check failed: {problem}"
    return None


def _delivery_key(headers: dict[str, str], body: bytes) -> str:
    """GitLab ≥ 17.4 sends the same Idempotency-Key on every retry and resend; for older
    GitLab the event itself identifies the delivery."""
    given = headers.get("idempotency-key")
    if given:
        return "key:" + given[:200]
    digest = hashlib.sha256((headers.get("x-gitlab-event") or "").encode() + b"\n" + body).hexdigest()
    return "body:" + digest


@app.post("/webhook")
def receive() -> Response:
    headers = app.current_event.headers
    try:
        body = _raw_body()
    except TooLarge:
        body = None
    except BadEvent as exc:
        body = exc
    problem = _authentication_problem(headers, body if isinstance(body, bytes) else b"")
    if problem:
        logger.warning("unauthenticated request", extra={"reason": problem})
        return _answer(401, problem)
    if body is None:
        return _answer(413, f"body is larger than {MAX_BODY_BYTES} bytes")
    if isinstance(body, BadEvent):
        return _answer(400, str(body))
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return _answer(400, f"the body is not JSON ({exc.__class__.__name__}): send GitLab's webhook payload")
    try:
        event = parse_gitlab_event(payload)
    except BadEvent as exc:
        return _answer(400, str(exc))

    route = lifecycle.route_gitlab_event(event)
    if not isinstance(route, lifecycle.Ignore):
        route = lifecycle.admitted(route.mr, services.settings.project_allowlist) or route
    if isinstance(route, lifecycle.Ignore):
        logger.info("ignored", extra={"reason": route.reason})
        return _answer(200, f"ignored: {route.reason}")
    logger.append_keys(mr=route.mr.key)
    state = event.state if isinstance(event, MergeRequestEvent) else None
    result = _once_per_delivery(_delivery_key(headers, body), route, state)
    return _answer(result["status"], result["message"], **result.get("extra", {}))


def _once_per_delivery(key: str, route, state: str | None) -> dict:
    """Run the delivery once; a redelivery with the same key gets the first answer back."""
    from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyAlreadyInProgressError

    act, config = _idempotent_act()
    config.register_lambda_context(app.lambda_context)
    try:
        return act(delivery={"key": key}, route=route, state=state)
    except IdempotencyAlreadyInProgressError:
        return {"status": 202, "message": "this delivery is already being handled"}


@lru_cache(maxsize=1)
def _idempotent_act():
    # Imported on first use: the idempotency utility is the heaviest import here, and
    # ignored events and rejected requests never need it.
    from aws_lambda_powertools.utilities.idempotency import (
        DynamoDBPersistenceLayer,
        IdempotencyConfig,
        idempotent_function,
    )

    persistence = DynamoDBPersistenceLayer(
        table_name=services.settings.table_name,
        key_attr="pk",
        expiry_attr="expires_at",
        boto3_client=services.aws("dynamodb"),
    )
    config = IdempotencyConfig(event_key_jmespath="key", expires_after_seconds=DELIVERY_MEMORY_SECONDS)
    act = idempotent_function(data_keyword_argument="delivery", persistence_store=persistence, config=config)(_act)
    return act, config


def _act(delivery: dict, route, state: str | None) -> dict:
    if isinstance(route, lifecycle.StopApp):
        return _stop(route)
    if isinstance(route, lifecycle.Command):
        return _command(route)
    return _consider_deploy(route, state)


def _command(command: lifecycle.Command) -> dict:
    mr = command.mr
    access = services.gitlab.member_access(mr.project_id, command.author_id)
    answer = lifecycle.answer_command(command, access, services.store.get(mr.project_id, mr.iid))
    if isinstance(answer, lifecycle.StopApp):
        result = _stop(answer)
        if result["status"] == 200:  # nothing was running: say so rather than stay silent
            return _note_answer(command, f"@{command.author}: there is no running review app to stop.")
        return result
    if isinstance(answer, lifecycle.ConsiderDeploy):
        current = services.gitlab.merge_request_head(mr.project_id, mr.iid)
        if current is None:
            return _result(200, f"ignored: GitLab has no merge request !{mr.iid} in project {mr.project_id}")
        state, sha, labels, draft = current
        result = _consider_deploy(dataclasses.replace(answer, sha=sha, labels=labels, draft=draft), state)
        if result["message"].startswith("ignored: "):
            reason = result["message"][len("ignored: "):]
            return _note_answer(command, f"@{command.author}: nothing was deployed: {reason}.")
        return result
    return _note_answer(command, answer)


def _note_answer(command: lifecycle.Command, answer: str) -> dict:
    """Answer in the MR's one note rather than with a new comment."""
    for _ in range(CLAIM_ATTEMPTS):
        record = services.store.get(command.mr.project_id, command.mr.iid)
        try:
            saved = services.store.save(lifecycle.with_answer(record, command.mr, answer))
        except Conflict:
            continue
        _publish(saved)
        return _result(200, answer)
    raise Conflict("the merge request changed repeatedly while we handled it")


def _result(status: int, message: str, **extra: Any) -> dict:
    return {"status": status, "message": message, "extra": extra}


def _consider_deploy(ask: lifecycle.ConsiderDeploy, mr_state: str | None) -> dict:
    mr, settings = ask.mr, services.settings
    if mr_state is None:  # pipeline events don't say whether their commit is still the MR's head
        current = services.gitlab.merge_request_head(mr.project_id, mr.iid)
        if current is None:
            return _result(200, f"ignored: GitLab has no merge request !{mr.iid} in project {mr.project_id}")
        mr_state, head_sha, labels, draft = current
        ask = dataclasses.replace(ask, labels=labels, draft=draft)
    else:
        head_sha = ask.sha
    try:
        text = services.gitlab.read_spec(mr.source_project_id, ask.sha)
        spec = (
            parse_spec(text, settings.default_ttl, settings.max_ttl, settings.max_cpu, settings.max_memory)
            if text is not None
            else None
        )
    except NoAccess as exc:
        spec = SpecProblems((f"{exc}, so `{SPEC_PATH}` could not be read. Add the bot to it as a Reporter or more.",))

    for _ in range(CLAIM_ATTEMPTS):
        record = services.store.get(mr.project_id, mr.iid)
        plan = lifecycle.plan_deploy(
            ask, spec, record, mr_state=mr_state, mr_head_sha=head_sha, allow_forks=settings.allow_forks
        )
        if isinstance(plan, lifecycle.Ignore):
            logger.info("ignored", extra={"reason": plan.reason})
            return _result(200, f"ignored: {plan.reason}")
        if isinstance(plan, lifecycle.Reject):
            return _reject(record, ask, plan.problems)
        if isinstance(plan, lifecycle.StopApp):
            return _stop(plan)

        base, notices = _base_task_definition(plan, mr)
        if isinstance(base, tuple):
            return _reject(record, ask, base)
        derived = taskdef.derive(
            base,
            plan.spec,
            project_id=mr.project_id,
            mr_iid=mr.iid,
            placeholders=placeholder_values(plan.sha, mr.source_branch, mr.iid, mr.project_path),
            allowed_role_arns=settings.allowed_role_arns,
        )
        if isinstance(derived, taskdef.TaskDefinitionProblems):
            return _reject(record, ask, derived.problems)
        try:
            compute = lifecycle.Compute(
                cpu=derived.cpu,
                memory=derived.memory,
                architecture=derived.architecture,
                capacity=plan.spec.capacity,
                public_ip=settings.assign_public_ip,
                rate_per_hour=cost.hourly_rate(
                    derived.cpu, derived.memory, derived.architecture, plan.spec.capacity == "spot",
                    settings.assign_public_ip, settings.prices,
                ),
            )
            claim = lifecycle.claim_launch(record, mr, plan, int(time.time()), notices, compute)
            claimed = services.store.save(claim)
        except Conflict:
            continue  # another delivery for this MR wrote first: look again
        return _launch(claimed, derived)
    logger.warning("gave up after repeated conflicts")
    raise Conflict("the merge request changed repeatedly while we handled it")


def _base_task_definition(
    plan: lifecycle.Launch, mr: MergeRequestRef
) -> tuple[dict | tuple[str, ...], tuple[str, ...]]:
    """(the task definition to derive from, notices), or (problems, ()) when there is none."""
    spec = plan.spec
    if not spec.compose:
        try:
            return services.ecs.describe_task_definition(spec.task_definition), ()
        except TaskDefinitionNotFound as exc:
            return (
                f"Task definition `{spec.task_definition}` was not found in this account and region "
                f"({exc}). Check `task_definition:` in `{SPEC_PATH}`.",
            ), ()
    texts = {}
    for path in filter(None, (spec.compose, spec.ecs_params)):
        texts[path] = services.gitlab.read_file(mr.source_project_id, path, plan.sha)
        if texts[path] is None:
            return (f"`{path}` (named in `{SPEC_PATH}`) does not exist at commit `{plan.sha[:8]}`.",), ()
    result = compose.translate(
        texts[spec.compose],
        texts.get(spec.ecs_params) if spec.ecs_params else None,
        compose_path=spec.compose,
        params_path=spec.ecs_params,
        placeholders=placeholder_values(plan.sha, mr.source_branch, mr.iid, mr.project_path),
        allowed_role_arns=services.settings.allowed_role_arns,
        family=spec.compose,
    )
    if isinstance(result, compose.ComposeProblems):
        return result.problems + tuple(f"Also: {n}" for n in result.notices), ()
    return result.task_definition, tuple(result.notices)


def _reject(record: Record | None, ask: lifecycle.ConsiderDeploy, problems: tuple[str, ...]) -> dict:
    try:
        saved = services.store.save(lifecycle.rejected(record, ask.mr, ask.sha, problems, int(time.time())))
    except Conflict:
        return _result(200, "ignored: the merge request changed meanwhile")
    _publish(saved)
    logger.info("rejected", extra={"problems": list(problems)})
    return _result(200, "not deployed: the problems are on the merge request", problems=list(problems))


def _launch(record: Record, derived: taskdef.DerivedTaskDefinition) -> dict:
    ecs = services.ecs
    td_arn = ecs.register(derived.register_kwargs)
    result = ecs.run(record, td_arn)
    if result.task_arn is None:
        ecs.retire(td_arn)
        # The old app is stopped too: the MR has moved on, and a task no record tracks would leak.
        _stop_replaced(record)
        problems = result.failures or ("RunTask started no task and gave no reason",)
        try:
            record = services.store.save(lifecycle.launch_failed(record, problems, int(time.time())))
        except Conflict:
            return _result(200, "could not start the task; the merge request changed meanwhile")
        _publish(record)
        logger.warning("run_task failed", extra={"failures": list(problems)})
        return _result(200, "could not start the review app; the reason is on the merge request")

    launched = lifecycle.launched(
        record, task_arn=result.task_arn, task_definition_arn=td_arn, container=derived.container, port=derived.port
    )
    try:
        launched = services.store.save(launched)
    except Conflict:
        # A newer delivery (new commit, merge, close) took over while we launched: ours must go.
        ecs.stop(result.task_arn, "Review app superseded by a newer event for this merge request")
        ecs.retire(td_arn)
        return _result(200, "superseded by a newer event for this merge request")
    _stop_replaced(launched)
    _publish(launched)
    logger.info("launched", extra={"task_arn": result.task_arn, "commit": launched.commit_sha})
    return _result(202, "deploying", task=result.task_arn)


def _stop_replaced(record: Record) -> None:
    if not record.replaced_task_arn:
        return
    services.ecs.stop(record.replaced_task_arn, f"Review app replaced by commit {record.commit_sha[:8]}")
    if record.replaced_task_definition_arn:
        services.ecs.retire(record.replaced_task_definition_arn)


def _stop(ask: lifecycle.StopApp) -> dict:
    for _ in range(CLAIM_ATTEMPTS):
        record = services.store.get(ask.mr.project_id, ask.mr.iid)
        target = lifecycle.plan_stop(record, ask.updated_at)
        if isinstance(target, lifecycle.Ignore):
            return _result(200, f"ignored: {target.reason}")
        try:
            who = f"@{ask.by}" if ask.by else ""
            stopping = services.store.save(
                lifecycle.stop_requested(target, ask.reason, detail=who, updated_at=ask.updated_at)
            )
        except Conflict:
            continue
        # A launch may be in flight (no task recorded yet): it will find the record changed and
        # stop its own task; the task it was replacing is stopped here.
        for task in filter(None, (stopping.task_arn, stopping.replaced_task_arn)):
            services.ecs.stop(task, f"Review app stopped: merge request {ask.reason}")
        _publish(stopping)
        return _result(202, "stopping", task=stopping.task_arn)
    raise Conflict("the merge request changed repeatedly while we handled it")


def _publish(record: Record) -> None:
    """Tell the MR. A GitLab failure must not undo what ECS already did: the next event for
    this MR publishes the same view again (publish is idempotent)."""
    try:
        published = services.gitlab.publish(record)
    except Exception:
        logger.exception("could not update the merge request; the next event will retry")
        return
    try:
        services.store.save(published)
    except Conflict:
        logger.info("record changed while publishing; the newer writer publishes its own view")


_DEPENDENCY_ERRORS = (BotoCoreError, ClientError, gitlab.exceptions.GitlabError, requests.RequestException, Conflict)


@app.not_found
def _no_such_route(exc: Exception) -> Response:
    return _answer(404, "no such route: GitLab webhooks go to POST /webhook")


@app.exception_handler(Exception)
def _failed(exc: Exception) -> Response:
    """Only our side fails here: client mistakes were answered above with a 4xx."""
    logger.exception("delivery failed")
    if isinstance(exc, _DEPENDENCY_ERRORS):
        return _answer(502, "GitLab or AWS did not answer in time; nothing was half-done that a resend won't fix")
    return _answer(500, "internal error; the logs have the details under this delivery's id")


@logger.inject_lambda_context(
    correlation_id_path='headers."idempotency-key" || headers."x-gitlab-event-uuid"', clear_state=True
)
def handler(event: dict, context: Any) -> dict:
    return app.resolve(event, context)

"""WebhookFunction: GitLab merge request, pipeline and comment events → launch or stop review apps.

The flow: authenticate → parse → route (lifecycle) → read record and spec → plan (lifecycle)
→ carry out the plan (ECS, DynamoDB) → publish to the MR. The rules live in
review_apps.lifecycle; this file only does what they decide.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import time
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response

from review_apps import lifecycle, taskdef
from review_apps.adapters.ecs import TaskDefinitionNotFound
from review_apps.adapters.store import Conflict
from review_apps.models import BadEvent, MergeRequestEvent, Record, parse_gitlab_event
from review_apps.services import Services
from review_apps.settings import load_settings
from review_apps.spec import SPEC_PATH, parse_spec, placeholder_values

MAX_BODY_BYTES = 5 * 1024 * 1024  # GitLab MR payloads with long descriptions stay well below this
CLAIM_ATTEMPTS = 3

logger = Logger(service="review-apps-webhook")
app = APIGatewayHttpResolver()
services = Services(load_settings())


def _answer(status: int, message: str, **extra: Any) -> Response:
    return Response(status, "application/json", json.dumps({"message": message, **extra}))


def _header(name: str) -> str:
    return app.current_event.headers.get(name) or ""


def _authenticated() -> bool:
    given = _header("x-gitlab-token")
    expected = services.secret(services.settings.webhook_secret_parameter)
    return bool(given) and hmac.compare_digest(given.encode(), expected.encode())


def _body() -> Any:
    raw = app.current_event.body or ""
    if app.current_event.is_base64_encoded:
        try:
            data = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            raise BadEvent("the body is marked base64 but is not valid base64") from None
    else:
        data = raw.encode()
    if len(data) > MAX_BODY_BYTES:
        raise OverflowError
    try:
        return json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadEvent(f"the body is not JSON ({exc.__class__.__name__}): send GitLab's webhook payload") from None


@app.post("/webhook")
def receive() -> Response:
    if not _authenticated():
        return _answer(401, "missing or wrong X-Gitlab-Token: set the webhook's secret token to the install's secret")
    try:
        event = parse_gitlab_event(_body())
    except OverflowError:
        return _answer(413, f"body is larger than {MAX_BODY_BYTES} bytes")
    except BadEvent as exc:
        return _answer(400, str(exc))

    route = lifecycle.route_gitlab_event(event)
    if isinstance(route, lifecycle.Ignore):
        logger.info("ignored", extra={"reason": route.reason})
        return _answer(200, f"ignored: {route.reason}")
    logger.append_keys(mr=route.mr.key)
    if isinstance(route, lifecycle.StopApp):
        return _stop(route)
    state = event.state if isinstance(event, MergeRequestEvent) else None
    return _consider_deploy(route, state)


def _consider_deploy(ask: lifecycle.ConsiderDeploy, mr_state: str | None) -> Response:
    mr, settings = ask.mr, services.settings
    if mr_state is None:  # pipeline events don't say whether their commit is still the MR's head
        mr_state, head_sha = services.gitlab.merge_request_head(mr.project_id, mr.iid)
    else:
        head_sha = ask.sha
    text = services.gitlab.read_spec(mr.source_project_id, ask.sha)
    spec = parse_spec(text, settings.default_ttl, settings.max_ttl) if text is not None else None

    for _ in range(CLAIM_ATTEMPTS):
        record = services.store.get(mr.project_id, mr.iid)
        plan = lifecycle.plan_deploy(ask, spec, record, mr_state=mr_state, mr_head_sha=head_sha)
        if isinstance(plan, lifecycle.Ignore):
            logger.info("ignored", extra={"reason": plan.reason})
            return _answer(200, f"ignored: {plan.reason}")
        if isinstance(plan, lifecycle.Reject):
            return _reject(record, ask, plan.problems)

        try:
            base = services.ecs.describe_task_definition(plan.spec.task_definition)
        except TaskDefinitionNotFound as exc:
            problem = (
                f"Task definition `{plan.spec.task_definition}` was not found in this account and region "
                f"({exc}). Check `task_definition:` in `{SPEC_PATH}`."
            )
            return _reject(record, ask, (problem,))
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
            claimed = services.store.save(lifecycle.claim_launch(record, mr, plan, int(time.time())))
        except Conflict:
            continue  # another delivery for this MR wrote first: look again
        return _launch(claimed, derived, plan.replaces)
    logger.warning("gave up after repeated conflicts")
    return _answer(503, "this merge request changed repeatedly while we handled it; GitLab may resend")


def _reject(record: Record | None, ask: lifecycle.ConsiderDeploy, problems: tuple[str, ...]) -> Response:
    try:
        saved = services.store.save(lifecycle.rejected(record, ask.mr, ask.sha, problems))
    except Conflict:
        return _answer(200, "ignored: the merge request changed meanwhile")
    _publish(saved)
    logger.info("rejected", extra={"problems": list(problems)})
    return _answer(200, "not deployed: the problems are on the merge request", problems=list(problems))


def _launch(record: Record, derived: taskdef.DerivedTaskDefinition, replaces: Record | None) -> Response:
    ecs = services.ecs
    td_arn = ecs.register(derived.register_kwargs)
    result = ecs.run(record, td_arn)
    if result.task_arn is None:
        ecs.deregister(td_arn)
        # The old app is stopped too: the MR has moved on, and a task no record tracks would leak.
        _stop_replaced(replaces, record)
        problems = result.failures or ("RunTask started no task and gave no reason",)
        try:
            record = services.store.save(lifecycle.launch_failed(record, problems, int(time.time())))
        except Conflict:
            return _answer(200, "could not start the task; the merge request changed meanwhile")
        _publish(record)
        logger.warning("run_task failed", extra={"failures": list(problems)})
        return _answer(200, "could not start the review app; the reason is on the merge request")

    launched = lifecycle.launched(
        record, task_arn=result.task_arn, task_definition_arn=td_arn, container=derived.container, port=derived.port
    )
    try:
        launched = services.store.save(launched)
    except Conflict:
        # A newer delivery (new commit, merge, close) took over while we launched: ours must go.
        ecs.stop(result.task_arn, "Review app superseded by a newer event for this merge request")
        ecs.deregister(td_arn)
        return _answer(200, "superseded by a newer event for this merge request")
    _stop_replaced(replaces, launched)
    _publish(launched)
    logger.info("launched", extra={"task_arn": result.task_arn, "commit": launched.commit_sha})
    return _answer(202, "deploying", task=result.task_arn)


def _stop_replaced(old: Record | None, new: Record) -> None:
    if old is None or not old.task_arn:
        return
    services.ecs.stop(old.task_arn, f"Review app replaced by commit {new.commit_sha[:8]}")
    if old.task_definition_arn:
        services.ecs.deregister(old.task_definition_arn)


def _stop(ask: lifecycle.StopApp) -> Response:
    for _ in range(CLAIM_ATTEMPTS):
        record = services.store.get(ask.mr.project_id, ask.mr.iid)
        target = lifecycle.plan_stop(record)
        if isinstance(target, lifecycle.Ignore):
            return _answer(200, f"ignored: {target.reason}")
        try:
            stopping = services.store.save(lifecycle.stop_requested(target, ask.reason))
        except Conflict:
            continue
        if stopping.task_arn:
            services.ecs.stop(stopping.task_arn, f"Review app stopped: merge request {ask.reason}")
        _publish(stopping)
        return _answer(202, "stopping", task=stopping.task_arn)
    return _answer(503, "this merge request changed repeatedly while we handled it; GitLab may resend")


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


@logger.inject_lambda_context(correlation_id_path='headers."x-gitlab-event-uuid"', clear_state=True)
def handler(event: dict, context: Any) -> dict:
    return app.resolve(event, context)

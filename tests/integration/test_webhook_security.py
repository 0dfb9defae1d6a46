"""The webhook as a door on the internet: signatures, redeliveries, races, forks, allowlist,
dependency failures, and secrets that never reach a log line or a note."""

from __future__ import annotations

import io
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest

from local import events
from local.lambda_runtime import LambdaContext, load_handler
from local.world import GITLAB_TOKEN, PROJECT_ID, PROJECT_PATH, SIGNING_SECRET, WEBHOOK_SECRET, World
from review_apps import auth

SHA1 = "1" * 40
SHA2 = "2" * 40
ON_OPEN = "task_definition: shop-web\ntrigger: merge_request\n"
FORK_ID = 77


def running_tasks(world: World, iid: int = 1) -> list[dict]:
    return [t for t in world.tasks() if t["group"] == f"review-app:{PROJECT_ID}:{iid}"]


def mr_open_body(world: World, iid: int = 1) -> dict:
    mr = world.mr(iid)
    return events.merge_request_hook(
        "open",
        project_id=PROJECT_ID,
        iid=iid,
        sha=mr["sha"],
        source_branch=mr["source_branch"],
        project_path=PROJECT_PATH,
    )


# --------------------------------------------------------------------------- signing tokens


def signed(body: dict, timestamp: int | None = None, webhook_id: str = "msg_2Lh9") -> tuple[str, dict]:
    raw = json.dumps(body)
    stamp = str(timestamp or int(time.time()))
    signature = auth.sign(auth.signing_key(SIGNING_SECRET), webhook_id, stamp, raw.encode())
    return raw, {"webhook-id": webhook_id, "webhook-timestamp": stamp, "webhook-signature": signature}


@pytest.fixture
def signing_world(make_world) -> World:
    world = make_world(WEBHOOK_SIGNING_SECRET_PARAMETER="/review-apps/signing-secret")
    world.commit(SHA1, spec=ON_OPEN)
    world.gitlab.state.open_merge_request(PROJECT_ID, 1, sha=SHA1, source_branch="feature/a")
    return world


def test_signed_request_is_accepted(signing_world: World):
    raw, headers = signed(mr_open_body(signing_world))
    assert signing_world.deliver(raw, "Merge Request Hook", **headers)["status"] == 202
    assert len(running_tasks(signing_world)) == 1


@pytest.mark.parametrize(
    "spoil",
    [
        lambda raw, h: (raw, {}),
        lambda raw, h: (raw, {**h, "webhook-signature": "v1,bm9wZQ=="}),
        lambda raw, h: (raw.replace('"open"', '"reopen"'), h),
        lambda raw, h: signed(json.loads(raw), timestamp=int(time.time()) - 600),
    ],
    ids=["unsigned", "wrong signature", "body changed", "stale timestamp"],
)
def test_bad_signatures_are_401_and_nothing_happens(signing_world: World, spoil):
    raw, headers = spoil(*signed(mr_open_body(signing_world)))
    calls = len(signing_world.gitlab.state.requests)
    answer = signing_world.deliver(raw, "Merge Request Hook", **headers)
    assert answer["status"] == 401 and "signing token check failed" in answer["body"]["message"]
    assert running_tasks(signing_world) == [] and len(signing_world.gitlab.state.requests) == calls
    assert signing_world.record(1) is None


def test_token_is_still_required_with_signatures(signing_world: World):
    raw, headers = signed(mr_open_body(signing_world))
    assert signing_world.deliver(raw, "Merge Request Hook", token="wrong", **headers)["status"] == 401


# --------------------------------------------------------------------------- redeliveries and races


def test_redelivery_with_the_same_idempotency_key_replays_the_first_answer(world: World):
    world.commit(SHA1, spec=ON_OPEN)
    world.gitlab.state.open_merge_request(PROJECT_ID, 1, sha=SHA1, source_branch="feature/a")
    body = mr_open_body(world)
    first = world.deliver(body, "Merge Request Hook", **{"idempotency-key": "delivery-1"})
    world.dynamodb.delete_item(TableName="review-apps-records", Key={"pk": {"S": f"mr#{PROJECT_ID}/1"}})
    again = world.deliver(body, "Merge Request Hook", **{"idempotency-key": "delivery-1"})
    assert first == again and first["status"] == 202
    assert len(world.tasks()) == 1  # the lost record did not make the resend launch again


def test_older_gitlab_without_idempotency_key_is_deduplicated_by_body(world: World):
    world.commit(SHA1, spec=ON_OPEN)
    world.gitlab.state.open_merge_request(PROJECT_ID, 1, sha=SHA1, source_branch="feature/a")
    raw = json.dumps(mr_open_body(world))
    answers = [world.deliver(raw, "Merge Request Hook", **{"idempotency-key": None}) for _ in range(3)]
    assert answers[0] == answers[1] == answers[2]
    assert len(world.tasks()) == 1 and len(world.ecs.list_task_definitions()["taskDefinitionArns"]) == 2


def containers(count: int) -> list:
    """Separate Lambda containers: each a fresh import of the handler, as template.yaml names it."""
    return [load_handler("WebhookFunction") for _ in range(count)]


def deliver_concurrently(handlers: list, requests: list[dict]) -> list[int]:
    def call(pair):
        handler, request = pair
        return handler(request, LambdaContext(function_name="WebhookFunction"))["statusCode"]

    with ThreadPoolExecutor(max_workers=len(requests)) as pool:
        return list(pool.map(call, zip(handlers, requests, strict=True)))


CONCURRENT = 10


def test_ten_concurrent_copies_of_one_delivery_launch_one_task(world: World):
    world.commit(SHA1, spec=ON_OPEN)
    world.gitlab.state.open_merge_request(PROJECT_ID, 1, sha=SHA1, source_branch="feature/a")
    request = events.api_event(mr_open_body(world), "Merge Request Hook", WEBHOOK_SECRET)
    statuses = deliver_concurrently(containers(CONCURRENT), [request] * CONCURRENT)
    assert all(s in (200, 202) for s in statuses), statuses
    assert len(world.tasks()) == 1
    assert len([n for n in world.notes(1) if "review-app:note" in n["body"]]) == 1


def test_ten_concurrent_events_for_one_mr_leave_one_task_of_the_newest_commit(world: World):
    world.commit(SHA1, spec=ON_OPEN)
    world.gitlab.state.open_merge_request(PROJECT_ID, 1, sha=SHA1, source_branch="feature/a")
    handlers = containers(CONCURRENT)
    start = datetime.now(UTC)
    for round_ in range(3):  # races are timing-dependent: several rounds make a leak likelier to show
        requests = []
        for index in range(CONCURRENT):
            sha = f"{round_:020d}{index:020d}"
            world.commit(sha, spec=ON_OPEN)
            pushed_at = start + timedelta(seconds=round_ * CONCURRENT + index)  # later index, newer push
            body = events.merge_request_hook(
                "update",
                project_id=PROJECT_ID,
                iid=1,
                sha=sha,
                updated_at=pushed_at,
                source_branch="feature/a",
                project_path=PROJECT_PATH,
                oldrev=SHA1,
            )
            requests.append(events.api_event(body, "Merge Request Hook", WEBHOOK_SECRET))
        newest = f"{round_:020d}{CONCURRENT - 1:020d}"
        world.mr(1)["sha"] = newest  # GitLab's head is the newest push
        statuses = deliver_concurrently(handlers, requests)
        assert all(s in (200, 202) for s in statuses), statuses
        # A delivery that lost every race is kept (202), not failed: the reconciler carries the
        # newest kept one out, and then the newest push must be the one running (liveness).
        world.reconcile()
        running = world.tasks()
        assert len(running) == 1, f"round {round_}: {len(running)} tasks running"
        record = world.record(1)
        assert record["commit_sha"] == newest and record["task_arn"] == running[0]["taskArn"]
        tags = {t["key"]: t["value"] for t in running[0]["tags"]} if running[0].get("tags") else {}
        assert tags.get("review-app:commit", newest) == newest
        active = [a for a in world.ecs.list_task_definitions()["taskDefinitionArns"] if "/review-app_" in a]
        assert len(active) == 1, active


# --------------------------------------------------------------------------- forks and the allowlist


def test_fork_gets_an_explanation_and_no_app(world: World):
    world.gitlab.state.add_project(FORK_ID, "someone/awesome_project")
    world.commit(SHA1, spec=ON_OPEN, project=FORK_ID)
    answer = world.open_mr(1, SHA1, source_project_id=FORK_ID)
    assert answer["status"] == 200 and world.tasks() == []
    note = world.note(1)
    assert "comes from a fork (project 77)" in note and "`AllowForks=true`" in note


def test_forks_run_when_the_install_opts_in(make_world):
    world = make_world(ALLOW_FORKS="true")
    world.gitlab.state.add_project(FORK_ID, "someone/awesome_project")
    world.commit(SHA1, spec=ON_OPEN, project=FORK_ID)
    assert world.open_mr(1, SHA1, source_project_id=FORK_ID)["status"] == 202
    assert len(world.tasks()) == 1


@pytest.mark.parametrize(
    ("allowlist", "admitted"), [("3,4", False), (f"3,{PROJECT_ID}", True), (PROJECT_PATH, True), ("", True)]
)
def test_project_allowlist(make_world, allowlist, admitted):
    world = make_world(PROJECT_ALLOWLIST=allowlist)
    world.commit(SHA1, spec=ON_OPEN)
    answer = world.open_mr(1, SHA1)
    assert (len(world.tasks()) == 1) is admitted
    if not admitted:
        assert answer["status"] == 200 and "not in this install's project allowlist" in answer["body"]["message"]
        assert world.gitlab.state.requests == [] and world.record(1) is None


# --------------------------------------------------------------------------- failures of others


def test_gitlab_down_is_kept_with_202_and_a_resend_works(world: World):
    world.commit(SHA1, spec=ON_OPEN)
    world.gitlab.state.open_merge_request(PROJECT_ID, 1, sha=SHA1, source_branch="feature/a")
    # The request path tries a GET twice (one retry): two faults exhaust the first delivery.
    world.gitlab.state.fail_next(2, status=503, path_contains="/repository/files/")
    body = mr_open_body(world)
    first = world.deliver(body, "Merge Request Hook", **{"idempotency-key": "delivery-9"})
    # Kept for the reconciler, not failed: GitLab turns a hook off after four failures in a row.
    assert first["status"] == 202 and first["body"]["message"].startswith("kept: GitLab failed")
    assert world.tasks() == [] and world.gitlab.state.faults == []
    again = world.deliver(body, "Merge Request Hook", **{"idempotency-key": "delivery-9"})
    assert again["status"] == 202 and len(world.tasks()) == 1
    assert world.reconcile()["kept_carried_out"] == 1 and len(world.tasks()) == 1  # nothing twice


def test_dynamodb_down_too_is_502_and_a_resend_works(fault_world: World):
    """Only when the ask can't be kept either does GitLab see a failure."""
    from local import fault_proxy

    world = fault_world
    world.commit(SHA1, spec=ON_OPEN)
    world.gitlab.state.open_merge_request(PROJECT_ID, 1, sha=SHA1, source_branch="feature/a")
    world.gitlab.state.fail_next(2, status=503, path_contains="/repository/files/")
    world.proxy.inject(fault_proxy.server_error("DynamoDB_20120810.UpdateItem", 3))  # keeping it fails too
    body = mr_open_body(world)
    first = world.deliver(body, "Merge Request Hook", **{"idempotency-key": "delivery-10"})
    assert first["status"] == 502 and world.tasks() == []
    again = world.deliver(body, "Merge Request Hook", **{"idempotency-key": "delivery-10"})
    assert again["status"] == 202 and len(world.tasks()) == 1


def test_gitlab_timing_out_is_kept_within_budget_and_a_resend_works(world: World):
    world.commit(SHA1, spec=ON_OPEN)
    world.gitlab.state.open_merge_request(PROJECT_ID, 1, sha=SHA1, source_branch="feature/a")
    world.gitlab.state.slow_next(2, seconds=3.5, path_contains="/repository/files/")
    body = mr_open_body(world)
    started = time.monotonic()
    first = world.deliver(body, "Merge Request Hook", **{"idempotency-key": "delivery-slow"})
    elapsed = time.monotonic() - started
    assert first["status"] == 202 and first["body"]["message"].startswith("kept:") and world.tasks() == []
    assert elapsed < 8, f"the webhook took {elapsed:.1f}s; GitLab gives up at 10s and the function at 8s"
    again = world.deliver(body, "Merge Request Hook", **{"idempotency-key": "delivery-slow"})
    assert again["status"] == 202 and len(world.tasks()) == 1


# --------------------------------------------------------------------------- secrets stay secret


@contextmanager
def structured_logs():
    """Every log line of both functions, formatted as in Lambda (JSON with all extra keys)."""
    buffer = io.StringIO()
    attached = []
    for name in ("review-apps-webhook", "review-apps-task-events"):
        service_logger = logging.getLogger(name)
        handler = logging.StreamHandler(buffer)
        handler.setFormatter(service_logger.handlers[0].formatter)
        service_logger.addHandler(handler)
        attached.append((service_logger, handler, service_logger.level))
        service_logger.setLevel(logging.DEBUG)  # everything, including what production filters out
    try:
        yield buffer
    finally:
        for service_logger, handler, level in attached:
            service_logger.removeHandler(handler)
            service_logger.setLevel(level)


def test_no_secret_reaches_a_log_line_or_a_note(make_world, capfd):
    world = make_world(WEBHOOK_SIGNING_SECRET_PARAMETER="/review-apps/signing-secret", POWERTOOLS_LOG_LEVEL="DEBUG")
    with structured_logs() as buffer:
        scenarios_with_secrets(world, capfd, buffer)


def scenarios_with_secrets(world: World, capfd, buffer: io.StringIO) -> None:
    world.commit(SHA1, spec=ON_OPEN)
    world.gitlab.state.open_merge_request(PROJECT_ID, 1, sha=SHA1, source_branch="feature/a")
    raw, headers = signed(mr_open_body(world))
    signature = headers["webhook-signature"]
    world.deliver(raw, "Merge Request Hook", **headers, **{"idempotency-key": "delivery-correlated"})  # accepted
    world.deliver(raw, "Merge Request Hook", token="guess", **headers)  # wrong token
    world.deliver(raw, "Merge Request Hook", **{**headers, "webhook-signature": "v1,bm9wZQ=="})
    world.deliver("not json", "Merge Request Hook", **signed({})[1])
    world.gitlab.state.fail_next(10, status=500, path_contains="/notes")
    [task] = world.tasks()
    with pytest.raises(Exception):
        world.task_event(task["taskArn"], "RUNNING")  # GitLab fails: the error is logged
    world.gitlab.state.faults.clear()
    world.task_event(task["taskArn"], "STOPPED", exit_codes={"web": 124})
    logs = capfd.readouterr()
    text = buffer.getvalue() + logs.out + logs.err
    # The scenarios did log: a search of empty output would prove nothing.
    assert "unauthenticated request" in text and '"message":"launched"' in text
    launched = next(json.loads(line) for line in text.splitlines() if '"message":"launched"' in line)
    assert launched["correlation_id"] == "delivery-correlated" and launched["mr"] == f"{PROJECT_ID}/1"
    notes = "\n".join(n["body"] for n in world.notes(1))
    for secret in (GITLAB_TOKEN, WEBHOOK_SECRET, SIGNING_SECRET, SIGNING_SECRET[6:], signature, signature[3:]):
        assert secret not in text, f"secret in logs: {secret[:6]}…"
        assert secret not in notes

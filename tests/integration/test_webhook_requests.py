"""What the webhook answers for every kind of request, and that bad ones change nothing."""

from __future__ import annotations

import base64
import json

import pytest

from local.events import load_sample
from local.lambda_runtime import LambdaContext
from local.world import PROJECT_ID, WEBHOOK_SECRET, World

SHA = "da1560886d4f094c3e6c9ef40349f7d38b5d27d7"  # the commit in the events/ samples


def send_raw(world: World, request: dict) -> dict:
    response = world.webhook_handler(request, LambdaContext(function_name="WebhookFunction"))
    return {"status": response["statusCode"], "body": json.loads(response["body"] or "{}")}


def nothing_happened(world: World) -> bool:
    return world.tasks() == [] and world.gitlab.state.notes.get((PROJECT_ID, 1), []) == []


@pytest.fixture
def sample_mr(world: World) -> World:
    """The MR the events/ samples talk about, with a spec that deploys on open."""
    world.commit(SHA, spec="task_definition: shop-web\ntrigger: merge_request\n")
    world.gitlab.state.open_merge_request(PROJECT_ID, 1, sha=SHA, source_branch="ms-viewport")
    return world


def with_secret(name: str) -> dict:
    request = load_sample(name)
    request["headers"]["x-gitlab-token"] = WEBHOOK_SECRET
    return request


@pytest.mark.parametrize(
    ("sample", "status", "message"),
    [
        ("webhook_merge_request_open.json", 202, "deploying"),
        ("webhook_merge_request_edit.json", 200, "without new commits"),
        ("webhook_pipeline_success.json", 200, "trigger is 'merge_request'"),
        ("webhook_note.json", 200, "only members of this project with Developer access"),
        ("webhook_merge_request_close.json", 200, "no review app is running"),
    ],
)
def test_every_webhook_sample_is_accepted(sample_mr: World, sample, status, message):
    answer = send_raw(sample_mr, with_secret(sample))
    assert answer["status"] == status and message in answer["body"]["message"]


def test_samples_make_a_whole_lifecycle(sample_mr: World):
    assert send_raw(sample_mr, with_secret("webhook_merge_request_open.json"))["status"] == 202
    assert send_raw(sample_mr, with_secret("webhook_merge_request_merge.json"))["status"] == 202
    assert sample_mr.tasks() == [] and "merged" in sample_mr.note(1)


@pytest.mark.parametrize("token", [None, "", "wrong-secret", WEBHOOK_SECRET + "x"])
def test_missing_or_wrong_token_is_401_and_changes_nothing(sample_mr: World, token):
    request = with_secret("webhook_merge_request_open.json")
    if token is None:
        del request["headers"]["x-gitlab-token"]
    else:
        request["headers"]["x-gitlab-token"] = token
    calls_before = len(sample_mr.gitlab.state.requests)
    answer = send_raw(sample_mr, request)
    assert answer["status"] == 401 and "X-Gitlab-Token" in answer["body"]["message"]
    assert nothing_happened(sample_mr) and len(sample_mr.gitlab.state.requests) == calls_before


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("not json", "the body is not JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('{"hello": "world"}', "field 'object_kind' is missing"),
        ('{"object_kind": "merge_request", "object_attributes": {"iid": 1}}', "'object_attributes.target_project_id'"),
        ('{"object_kind": 7}', "field 'object_kind' must be str"),
    ],
)
def test_bad_bodies_are_400_naming_the_problem(sample_mr: World, body, message):
    answer = sample_mr.deliver(body, "Merge Request Hook")
    assert answer["status"] == 400 and message in answer["body"]["message"]
    assert nothing_happened(sample_mr)


def test_base64_bodies_are_decoded(sample_mr: World):
    request = with_secret("webhook_merge_request_open.json")
    request["body"] = base64.b64encode(request["body"].encode()).decode()
    request["isBase64Encoded"] = True
    assert send_raw(sample_mr, request)["status"] == 202
    request["body"] = "%%%not-base64%%%"
    assert send_raw(sample_mr, request)["status"] == 400


def test_oversized_body_is_413(sample_mr: World):
    answer = sample_mr.deliver('{"object_kind": "push", "pad": "' + "x" * (5 * 1024 * 1024) + '"}', "Push Hook")
    assert answer["status"] == 413 and nothing_happened(sample_mr)


def test_events_we_do_not_use_are_200_with_a_reason(sample_mr: World):
    for kind in ("push", "tag_push", "issue", "wiki_page", "deployment", "release"):
        answer = sample_mr.deliver({"object_kind": kind}, "Push Hook")
        assert answer["status"] == 200 and f"'{kind}' events are not used" in answer["body"]["message"]
    assert nothing_happened(sample_mr)


def test_other_routes_are_404(sample_mr: World):
    request = with_secret("webhook_merge_request_open.json")
    request["rawPath"] = request["requestContext"]["http"]["path"] = "/other"
    request["routeKey"] = "POST /other"
    assert send_raw(sample_mr, request)["status"] == 404 and nothing_happened(sample_mr)


def test_task_samples_are_accepted_by_the_task_events_function(world: World):
    for name in (
        "task_running.json",
        "task_stopped_ttl.json",
        "task_stopped_pull_error.json",
        "task_stopped_crash.json",
        "task_stopped_by_us.json",
        "task_stopped_spot.json",
    ):
        assert world.deliver_task_event(load_sample(name))["result"] == "ignored"  # another cluster's task

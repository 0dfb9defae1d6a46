"""Property-based: whatever arrives at the webhook, GitLab never gets a 5xx for it, and a request
that is refused (400/401/413) or ignored changes nothing anywhere."""

from __future__ import annotations

import base64
import copy
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from local.events import api_event, load_sample
from local.lambda_runtime import LambdaContext
from local.world import PROJECT_ID, WEBHOOK_SECRET, World

SAMPLES = [
    ("webhook_merge_request_open.json", "Merge Request Hook"),
    ("webhook_merge_request_push.json", "Merge Request Hook"),
    ("webhook_merge_request_close.json", "Merge Request Hook"),
    ("webhook_merge_request_merge.json", "Merge Request Hook"),
    ("webhook_pipeline_success.json", "Pipeline Hook"),
    ("webhook_note.json", "Note Hook"),
]
BODIES = [(json.loads(load_sample(name)["body"]), kind) for name, kind in SAMPLES]
RUNS = {"mutated": 700, "arbitrary": 400}


def fuzz_settings(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63) | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)


def paths(node, prefix=()):
    if isinstance(node, dict):
        for key, value in node.items():
            yield prefix + (key,)
            yield from paths(value, prefix + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node[:3]):
            yield prefix + (index,)
            yield from paths(value, prefix + (index,))


@st.composite
def mutated_sample(draw):
    body, kind = draw(st.sampled_from(BODIES))
    body = copy.deepcopy(body)
    for _ in range(draw(st.integers(1, 3))):
        targets = list(paths(body))
        if not targets:
            break
        path = draw(st.sampled_from(targets))
        parent = body
        for step in path[:-1]:
            parent = parent[step]
        if draw(st.booleans()) and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(json_values)
    token = draw(st.sampled_from([WEBHOOK_SECRET, WEBHOOK_SECRET, "wrong", None]))
    return json.dumps(body), kind, token


@st.composite
def arbitrary_request(draw):
    raw = draw(
        st.binary(max_size=300)
        | st.text(max_size=300).map(str.encode)
        | json_values.map(lambda v: json.dumps(v).encode())
    )
    headers = draw(
        st.dictionaries(
            st.sampled_from(
                [
                    "x-gitlab-event",
                    "idempotency-key",
                    "content-type",
                    "webhook-id",
                    "webhook-timestamp",
                    "webhook-signature",
                    "x-gitlab-event-uuid",
                ]
            ),
            st.text(max_size=40),
            max_size=5,
        )
    )
    token = draw(st.sampled_from([WEBHOOK_SECRET, "", None, draw(st.text(max_size=40))]))
    as_base64 = draw(st.booleans())
    return raw, headers, token, as_base64


def note_count(world: World) -> int:
    return sum(len(notes) for notes in world.gitlab.state.notes.values())


def nothing_launched(world: World) -> bool:
    """Launches persist, so one look at the end catches any example's: no task in any state,
    no derived task definition, no review app recorded as running. (A valid, authenticated
    `/review-app status` from a non-member may rightly leave a polite refusal in a note.)"""
    records = world.dynamodb.scan(TableName="review-apps-records")["Items"]
    active = [
        r
        for r in records
        if r["pk"]["S"].startswith("mr#") and r.get("status", {}).get("S") in ("deploying", "live", "stopping")
    ]
    tasks = [
        arn
        for status in ("RUNNING", "STOPPED")
        for arn in world.ecs.list_tasks(cluster="review-apps", desiredStatus=status)["taskArns"]
    ]
    derived = [a for a in world.ecs.list_task_definitions()["taskDefinitionArns"] if "/review-app-" in a]
    return not active and not tasks and not derived


def send(world: World, request: dict) -> int:
    response = world.webhook_handler(request, LambdaContext(function_name="WebhookFunction"))
    json.loads(response["body"])  # always a JSON answer
    return response["statusCode"]


def test_mutated_gitlab_payloads(world: World):
    # The samples' MR exists, but its commit has no spec: any accepted event may look, never launch.
    world.commit("da1560886d4f094c3e6c9ef40349f7d38b5d27d7", spec=None)
    world.gitlab.state.open_merge_request(
        PROJECT_ID, 1, sha="da1560886d4f094c3e6c9ef40349f7d38b5d27d7", source_branch="ms-viewport"
    )
    runs = {"count": 0, "statuses": set()}

    @fuzz_settings(RUNS["mutated"])
    @given(mutated_sample())
    def one(case):
        raw, kind, token = case
        runs["count"] += 1
        calls, notes = len(world.gitlab.state.requests), note_count(world)
        request = api_event(raw, kind, token or "")
        if token is None:
            del request["headers"]["x-gitlab-token"]
        status = send(world, request)
        runs["statuses"].add(status)
        assert status < 500, (status, raw[:200])
        if token != WEBHOOK_SECRET:
            assert status == 401
        if status in (400, 401, 413):
            assert len(world.gitlab.state.requests) == calls and note_count(world) == notes, raw[:200]

    one()
    assert runs["count"] >= RUNS["mutated"]
    assert nothing_launched(world)
    assert {200, 400, 401} <= runs["statuses"]  # the fuzzer reached every kind of answer


def test_arbitrary_requests(world: World):
    runs = {"count": 0}

    @fuzz_settings(RUNS["arbitrary"])
    @given(arbitrary_request())
    def one(case):
        raw, headers, token, as_base64 = case
        runs["count"] += 1
        calls = len(world.gitlab.state.requests)
        request = api_event("", "Merge Request Hook", token or "", headers)
        if token is None:
            del request["headers"]["x-gitlab-token"]
        request["body"] = base64.b64encode(raw).decode() if as_base64 else raw.decode("utf-8", "replace")
        request["isBase64Encoded"] = as_base64
        status = send(world, request)
        assert status < 500, (status, raw[:200])
        if token != WEBHOOK_SECRET:
            assert status == 401
        assert len(world.gitlab.state.requests) == calls and note_count(world) == 0, raw[:200]

    one()
    assert runs["count"] >= RUNS["arbitrary"]
    assert nothing_launched(world)

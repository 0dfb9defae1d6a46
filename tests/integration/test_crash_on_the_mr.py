"""Why it failed, on the MR: a crashed app's last log lines (CloudWatch Logs in moto holds the
stream), masked and inert, and its logs one click away; a public project's MR links the log but
shows no lines unless the spec opts in."""

from __future__ import annotations

import time

import boto3
import pytest

from local.world import PROJECT_ID, REGION, World

SHA = "c" * 40
ECR = "111122223333.dkr.ecr.us-east-1.amazonaws.com"
SPEC = "task_definition: shop-web\ntrigger: merge_request\n"
LOG = [
    "Starting shop on :8000",
    "connecting to postgres://shop:hunter22-secret@db/shop",
    "@alice look at [this](https://evil.example) ```",
    "Traceback (most recent call last):",
    "KeyError: 'STRIPE_KEY'",
]


def logging_web(world: World) -> None:
    """The team's base definition: its web container logs to CloudWatch, with a secret in its environment."""
    world.register_base_task_definition(
        containerDefinitions=[
            {
                "name": "web",
                "image": f"{ECR}/shop:latest",
                "essential": True,
                "memory": 512,
                "command": ["gunicorn", "shop.wsgi"],
                "portMappings": [{"containerPort": 8000}],
                "environment": [
                    {"name": "DB_PASSWORD", "value": "hunter22-secret"},
                    {"name": "MODE", "value": "debug"},
                ],
                "logConfiguration": {
                    "logDriver": "awslogs",
                    "options": {
                        "awslogs-group": "shop",
                        "awslogs-region": "us-east-1",
                        "awslogs-stream-prefix": "review",
                    },
                },
            }
        ]
    )


def crash(world: World, spec: str = SPEC) -> str:
    logging_web(world)
    world.commit(SHA, spec=spec)
    world.open_mr(1, SHA)
    task = world.record(1)["task_arn"]
    logs = boto3.client("logs", region_name=REGION)
    group, stream = f"/review-apps/{PROJECT_ID}/shop", f"review/web/{task.rsplit('/', 1)[-1]}"
    logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName=stream)
    logs.put_log_events(
        logGroupName=group,
        logStreamName=stream,
        logEvents=[{"timestamp": int(time.time() * 1000) + n, "message": m} for n, m in enumerate(LOG)],
    )
    world.task_event(task, "RUNNING")
    world.task_event(task, "STOPPED", exit_codes={"web": 1}, stop_code="EssentialContainerExited")
    return task


def test_a_crash_shows_its_last_lines_masked_and_inert(world: World):
    task = crash(world)
    note = world.note(1)
    assert "Review app: stopped" in note and "exited with code 1" in note
    assert "Logs: [`web`](https://us-east-1.console.aws.amazon.com/cloudwatch/home?region=us-east-1#logsV2:" in note
    assert f"review$252Fweb$252F{task.rsplit('/', 1)[-1]}" in note
    assert "<details><summary>The last 5 lines of web&#x27;s log</summary>" in note
    assert "postgres://shop:****@db/shop" in note and "hunter22-secret" not in note
    block = note.split("<details>", 1)[1]
    assert block.split("\n\n", 2)[1].startswith("As the app printed them, with the values of secret-looking")
    fence = block.split("\n\n", 2)[2].split("text\n", 1)[0]
    assert fence == "````"  # longer than the log's own ``` run: nothing in it escapes the code block
    assert (
        "@alice look at [this](https://evil.example) ```"
        in block.split(fence + "text\n", 1)[1].split("\n" + fence + "\n", 1)[0]
    )


def test_a_public_project_links_the_log_but_shows_no_lines(world: World):
    world.gitlab.state.projects[PROJECT_ID].visibility = "public"
    crash(world)
    note = world.note(1)
    assert "Logs: [`web`](" in note and "<details>" not in note and "Traceback" not in note
    assert "anyone can read this project's merge requests" in note and "`show_crash_log: true`" in note


def test_a_public_project_may_opt_in(world: World):
    world.gitlab.state.projects[PROJECT_ID].visibility = "public"
    crash(world, SPEC + "show_crash_log: true\n")
    assert "KeyError: &#x27;STRIPE_KEY&#x27;" not in world.note(1)  # the lines are code, not HTML-escaped
    assert "KeyError: 'STRIPE_KEY'" in world.note(1)


@pytest.mark.parametrize("trouble", ["no stream", "gitlab down"])
def test_without_its_log_the_crash_is_still_explained(world: World, trouble):
    logging_web(world)  # no stream is ever written
    world.commit(SHA, spec=SPEC)
    world.open_mr(1, SHA)
    task = world.record(1)["task_arn"]
    world.task_event(task, "RUNNING")
    if trouble == "gitlab down":
        world.gitlab.state.fail_next(1, status=500, method="GET", path_contains=f"/projects/{PROJECT_ID}")
    world.task_event(task, "STOPPED", exit_codes={"web": 1}, stop_code="EssentialContainerExited")
    note = world.note(1)
    assert "exited with code 1" in note and "Logs: [`web`](" in note and "<details>" not in note


def test_the_start_shows_its_phases_once_each_in_order_then_how_long_it_took(world: World):
    from datetime import UTC, datetime, timedelta

    world.commit(SHA, spec=SPEC)
    world.open_mr(1, SHA)
    task = world.record(1)["task_arn"]
    created = datetime.now(UTC) - timedelta(seconds=60)
    pulled_from, pulled_to, started = (created + timedelta(seconds=s) for s in (6, 37, 47))
    edits = lambda: sum(1 for m, t in world.gitlab.state.requests if m == "PUT" and "notes" in t)  # noqa: E731
    before = edits()
    world.task_event(task, "PROVISIONING", timeline={"createdAt": created})
    assert "Now: Fargate is finding capacity for the task…" in world.note(1)
    world.task_event(task, "PENDING", timeline={"createdAt": created, "pullStartedAt": pulled_from})
    assert "Now: pulling the image…" in world.note(1)
    world.task_event(task, "PENDING", timeline={"createdAt": created, "pullStartedAt": pulled_from})  # nothing new
    world.task_event(
        task, "PENDING", timeline={"createdAt": created, "pullStartedAt": pulled_from, "pullStoppedAt": pulled_to}
    )
    assert "Now: starting the container…" in world.note(1)
    world.task_event(task, "PROVISIONING", timeline={"createdAt": created})  # late: never back a phase
    assert "Now: starting the container…" in world.note(1)
    assert edits() - before == 3  # one edit per phase, none for a repeat or a late event
    world.task_event(
        task,
        "RUNNING",
        started_at=started,
        timeline={"createdAt": created, "pullStartedAt": pulled_from, "pullStoppedAt": pulled_to},
    )
    note = world.note(1)
    assert "Review app: live" in note and "Now:" not in note
    assert "Started in 47s: 6s waiting for capacity, 31s pulling the image, 10s starting." in note


@pytest.mark.parametrize(
    ("reason", "description", "says"),
    [
        (
            "Target.ResponseCodeMismatch",
            "Health checks failed with these codes: [404]",
            "the app answered 404 to `/healthz` on port 8000, not 200-399",
        ),
        ("Target.Timeout", "Request timed out", "the app did not answer `/healthz` on port 8000 within 5 seconds"),
        ("Target.FailedHealthChecks", "Health checks failed", "the load balancer could not connect to port 8000"),
    ],
)
def test_a_failing_health_check_is_explained_in_words_and_taken_back(alb_world: World, reason, description, says):
    world = alb_world
    world.commit(SHA, spec=SPEC + "health_check: /healthz\n")
    world.open_mr(1, SHA)
    world.task_event(world.record(1)["task_arn"], "RUNNING")
    assert world.reconcile()["health_notes_changed"] == 0  # healthy: nothing to say
    world.health_check_fails(1, reason, description)
    assert world.reconcile()["health_notes_changed"] == 1
    note = world.note(1)
    assert f":warning: The load balancer's health check fails: {says}." in note
    assert "fix the app, or `health_check:` and `port:` in the spec" in note
    assert world.reconcile()["health_notes_changed"] == 0  # said once, not on every run
    world.health_check_passes(1)
    assert world.reconcile()["health_notes_changed"] == 1 and "health check fails" not in world.note(1)


def test_the_spec_can_hide_the_lines_in_a_private_project(world: World):
    crash(world, spec=SPEC + "show_crash_log: false\n")
    note = world.note(1)
    assert "Logs: [`web`](" in note and "<details>" not in note
    assert "the spec says `show_crash_log: false`" in note

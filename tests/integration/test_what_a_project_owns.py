"""The second security review, as a hostile Developer of one project, through the real handlers
against moto and the GitLab stand-in: what the install's allowlists reach is usable only where its
owner's `review-apps:projects` tag names the project, and the install trusts only what it made."""

from __future__ import annotations

import subprocess
import sys

import pytest

from local import events
from local.fault_proxy import ECS, Fault
from local.world import (
    ACCOUNT,
    EXECUTION_ROLE,
    INSTALL_ID,
    PROJECT_ID,
    PROJECT_PATH,
    REVIEW_DOMAIN,
    TABLE,
    TASK_ROLE,
    WEBHOOK_SECRET,
    World,
)
from review_apps import auth
from review_apps.lifecycle import addresses

SHA1, SHA2 = "1" * 40, "2" * 40
ECR = f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com"
ON_OPEN = "task_definition: shop-web\ntrigger: merge_request\n"
COMPOSE_SPEC = "compose: docker-compose.yml\necs_params: ecs-params.yml\ntrigger: merge_request\n"
HOST = f"awesome-project-mr1-p{PROJECT_ID}.{REVIEW_DOMAIN}"


def open_with(world: World, spec: str, files: dict[str, str] | None = None, iid: int = 1) -> dict:
    world.commit(SHA1, spec=spec, extra_files=files)
    return world.open_mr(iid, SHA1, branch=f"feature/{iid}")


def refused(world: World, answer: dict, *says: str, iid: int = 1) -> str:
    note = world.note(iid) or ""
    assert answer["status"] == 200 and not [t for t in world.tasks() if t["group"].endswith(f":{iid}")], note
    for text in says:
        assert text in note, note
    return note


def compose_with(image: str = f"{ECR}/shop:1", role: str = "", log_group: str = "") -> dict[str, str]:
    logging = (
        (
            f"    logging:\n      driver: awslogs\n      options:\n        awslogs-group: {log_group}\n"
            "        awslogs-region: us-east-1\n        awslogs-stream-prefix: web\n"
        )
        if log_group
        else ""
    )
    compose = f"services:\n  web:\n    image: {image}\n    mem_limit: 256m\n    ports: ['80']\n{logging}"
    params = f"version: 1\ntask_definition:\n  task_execution_role: {EXECUTION_ROLE}\n"
    if role:
        params += f"  task_role_arn: {role}\n"
    return {"docker-compose.yml": compose, "ecs-params.yml": params}


# --------------------------------------------------------------------------- roles, by their tag


@pytest.mark.parametrize("tag", ["team_b/", "team_b/payments 31", None])
def test_a_listed_task_role_not_tagged_for_the_project_is_refused(world: World, tag):
    world.tag_role(TASK_ROLE, tag)
    answer = open_with(world, COMPOSE_SPEC, compose_with(role=TASK_ROLE))
    refused(world, answer, f"The task role `{TASK_ROLE}` is not tagged `review-apps:projects` for this project")


def test_a_base_definitions_execution_role_needs_the_tag_too(world: World):
    world.register_base_task_definition(executionRoleArn=EXECUTION_ROLE)
    world.tag_role(EXECUTION_ROLE, "team_b/")
    answer = open_with(world, ON_OPEN)
    refused(world, answer, f"The task execution role `{EXECUTION_ROLE}` is not tagged `review-apps:projects`")


@pytest.mark.parametrize("tag", ["*", "awesome_space/", f"{PROJECT_ID}", "team_b/ awesome_space/awesome_project"])
def test_a_role_tagged_for_the_project_or_everyone_is_usable(world: World, tag):
    world.tag_role(TASK_ROLE, tag)
    assert open_with(world, COMPOSE_SPEC, compose_with(role=TASK_ROLE))["status"] == 202


# --------------------------------------------------------------------------- images


def test_another_teams_ecr_repository_reads_like_one_that_does_not_exist(world: World):
    theirs = world.repository("payments", "team_b/")
    untagged = world.repository("scratch", None)
    notes = []
    for iid, image in enumerate((f"{theirs}:prod", f"{untagged}:1", f"{ECR}/no-such-repository:1"), start=1):
        answer = open_with(world, ON_OPEN + f"image: {image}\n", iid=iid)
        note = refused(world, answer, f"would run image `{image}`, which this project may not use", iid=iid)
        notes.append(note.replace(image, "IMAGE").replace(f"mr={iid}", "mr=N"))
    assert notes[0] == notes[1] == notes[2]  # nothing tells which exist, or whose they are


@pytest.mark.parametrize(
    "image",
    [
        "evil.example/miner:1",
        "nginx-evil:1",  # Docker Hub, not the shared nginx
        "docker.io/library/nginx-evil:1",
        f"{ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com/shop:1",  # this account, another Region
        "999988887777.dkr.ecr.us-east-1.amazonaws.com/shop:1",  # another account
        f"{ECR}.evil.com/shop:1",
        f"{ECR}/shop-evil:1",
        "busybox",
    ],
)
def test_an_image_from_anywhere_else_is_refused(world: World, image):
    refused(world, open_with(world, ON_OPEN + f"image: {image}\n"), "which this project may not use")


@pytest.mark.parametrize(
    "image", [f"{ECR}/shop:${{CI_COMMIT_SHA}}", "nginx:1.27-alpine", "docker.io/library/nginx@sha256:" + "a" * 64]
)
def test_an_owned_or_shared_image_runs(world: World, image):
    assert open_with(world, ON_OPEN + f"image: {image}\n")["status"] == 202


def test_the_projects_own_gitlab_registry(make_world):
    world = make_world(GITLAB_REGISTRY_HOST="registry.gitlab.example")
    ok = open_with(world, ON_OPEN + f"image: registry.gitlab.example/{PROJECT_PATH}/web:1\n")
    assert ok["status"] == 202
    for iid, image in enumerate(
        (
            f"registry.gitlab.example/{PROJECT_PATH}-evil/web:1",
            "registry.gitlab.example/team_b/payments:1",
            f"registry.gitlab.example.evil.com/{PROJECT_PATH}/web:1",
            f"registry.gitlab.example:5050/{PROJECT_PATH}/web:1",
        ),
        start=2,
    ):
        refused(
            world,
            open_with(world, ON_OPEN + f"image: {image}\n", iid=iid),
            f"this project's GitLab registry (`registry.gitlab.example/{PROJECT_PATH}`/…)",
            iid=iid,
        )


def test_shared_prefixes_match_whole_path_segments(make_world):
    world = make_world(SHARED_IMAGE_PREFIXES="public.ecr.aws/docker/library/postgres")
    assert open_with(world, ON_OPEN + "image: public.ecr.aws/docker/library/postgres:16\n")["status"] == 202
    refused(
        world,
        open_with(world, ON_OPEN + "image: public.ecr.aws/docker/library/postgres-evil:16\n", iid=2),
        "a shared image (`public.ecr.aws/docker/library/postgres`)",
        iid=2,
    )


# --------------------------------------------------------------------------- log groups


@pytest.mark.parametrize(
    ("group", "placed"),
    [
        ("ecs-fargate", f"/review-apps/{PROJECT_ID}/ecs-fargate"),
        ("/review-apps/31/payments", f"/review-apps/{PROJECT_ID}/31/payments"),  # another project's group
        (f"/review-apps/{PROJECT_ID}/web", f"/review-apps/{PROJECT_ID}/web"),  # already its own
    ],
)
def test_log_groups_are_the_projects_own_whatever_the_files_say(world: World, group, placed):
    assert open_with(world, COMPOSE_SPEC, compose_with(log_group=group))["status"] == 202
    [task] = world.tasks()
    [web] = world.ecs.describe_task_definition(taskDefinition=task["taskDefinitionArn"])["taskDefinition"][
        "containerDefinitions"
    ]
    assert web["logConfiguration"]["options"]["awslogs-group"] == placed
    assert f"`{placed}`" in world.note(1)


def test_a_base_definitions_log_group_is_placed_too(world: World):
    world.register_base_task_definition(
        containerDefinitions=[
            {
                "name": "web",
                "image": f"{ECR}/shop:latest",
                "essential": True,
                "memory": 512,
                "command": ["gunicorn", "shop.wsgi"],
                "portMappings": [{"containerPort": 8000}],
                "logConfiguration": {
                    "logDriver": "awslogs",
                    "options": {
                        "awslogs-group": "/ecs/payments-prod",
                        "awslogs-region": "us-east-1",
                        "awslogs-stream-prefix": "web",
                    },
                },
            }
        ]
    )
    assert open_with(world, ON_OPEN)["status"] == 202
    [task] = world.tasks()
    [web] = world.ecs.describe_task_definition(taskDefinition=task["taskDefinitionArn"])["taskDefinition"][
        "containerDefinitions"
    ]
    assert web["logConfiguration"]["options"]["awslogs-group"] == f"/review-apps/{PROJECT_ID}/ecs/payments-prod"


# --------------------------------------------------------------------------- the load balancer


def test_a_target_group_with_our_name_but_not_our_tag_is_not_adopted(alb_world: World):
    world = alb_world
    name = addresses.target_group_name(INSTALL_ID, PROJECT_ID, 1)
    squatter = world.elbv2.create_target_group(
        Name=name,
        Protocol="HTTP",
        Port=80,
        VpcId=world.ec2.describe_vpcs(Filters=[{"Name": "cidr", "Values": ["10.20.0.0/16"]}])["Vpcs"][0]["VpcId"],
        TargetType="ip",
        Tags=[{"Key": "review-apps:install", "Value": "someone-else"}],
    )["TargetGroups"][0]["TargetGroupArn"]
    world.commit(SHA1)
    world.open_mr(1, SHA1)
    answer = world.pipeline(1)
    assert world.tasks() == [] and answer["status"] in (200, 202)
    assert "not this install's" in world.note(1)
    assert world.route(HOST) is None  # no rule sends this MR's visitors to someone else's targets
    assert world.elbv2.describe_target_groups(TargetGroupArns=[squatter])["TargetGroups"]  # left alone
    assert world.running_slots() == set()


def test_a_host_another_rule_routes_is_refused_and_that_rule_left_alone(alb_world: World):
    world = alb_world
    theirs = world.elbv2.create_target_group(
        Name="team-b-web",
        Protocol="HTTP",
        Port=80,
        TargetType="ip",
        VpcId=world.ec2.describe_vpcs()["Vpcs"][-1]["VpcId"],
    )
    group = theirs["TargetGroups"][0]["TargetGroupArn"]
    rule = world.elbv2.create_rule(
        ListenerArn=world.listener_arn,
        Priority=5,
        Actions=[{"Type": "forward", "TargetGroupArn": group}],
        Conditions=[{"Field": "host-header", "HostHeaderConfig": {"Values": [HOST]}}],
    )["Rules"][0]
    world.commit(SHA1)
    world.open_mr(1, SHA1)
    world.pipeline(1)
    assert world.tasks() == []
    assert "is already routed by a load balancer rule this install did not make" in world.note(1)
    [kept] = world.rules()
    assert kept["RuleArn"] == rule["RuleArn"] and kept["Actions"][0]["TargetGroupArn"] == group
    assert [g["TargetGroupArn"] for g in world.target_groups()] == [group]  # ours was not left behind either
    assert world.running_slots() == set()


# --------------------------------------------------------------------------- task events


def test_an_event_for_a_task_someone_else_started_with_our_group_and_started_by_is_ignored(world: World):
    world.commit(SHA1, spec=ON_OPEN)
    world.open_mr(1, SHA1)
    record = world.record(1)
    ours = record["task_arn"]
    # Anyone who may run tasks in the cluster can compute the group and startedBy of an MR.
    foreign = world.ecs.run_task(
        cluster="review-apps",
        taskDefinition="shop-web",
        launchType="FARGATE",
        group=f"review-app:{PROJECT_ID}:1",
        startedBy=record["launch_id"],
        networkConfiguration={
            "awsvpcConfiguration": {"subnets": [world.subnet], "securityGroups": [world.security_group]}
        },
    )
    foreign_arn = foreign["tasks"][0]["taskArn"]
    answer = world.task_event(foreign_arn, "RUNNING")
    assert answer["result"] == "ignored" and world.record(1)["status"] == "deploying"
    assert world.record(1)["task_arn"] == ours
    world.task_event(foreign_arn, "STOPPED", exit_codes={"web": 1})
    assert world.record(1)["status"] == "deploying"  # its crash is not ours either
    assert world.task_event(ours, "RUNNING")["result"] == "live"


# --------------------------------------------------------------------------- project tokens


def deliver_as_project(world: World, token: str) -> int:
    body = events.merge_request_hook(
        "update",
        project_id=PROJECT_ID,
        iid=1,
        sha=SHA1,
        source_branch="f",
        project_path=PROJECT_PATH,
        source_project_id=PROJECT_ID,
    )
    return world.deliver(body, "Merge Request Hook", token=token)["status"]


def project_token_tool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tools.project_token", *args], capture_output=True, text=True, timeout=60
    )


def test_a_project_token_is_revoked_by_rotating_it(world: World):
    version_1 = auth.project_token(WEBHOOK_SECRET, PROJECT_ID)  # today's token: nobody re-issues on upgrade
    assert deliver_as_project(world, version_1) == 200
    printed = project_token_tool(str(PROJECT_ID), "--table", TABLE, "--secret-parameter", "/review-apps/webhook-secret")
    assert printed.returncode == 0 and printed.stdout.strip() == version_1
    rotated = project_token_tool(
        str(PROJECT_ID), "--rotate", "--table", TABLE, "--secret-parameter", "/review-apps/webhook-secret"
    )
    assert rotated.returncode == 0, rotated.stderr
    version_2 = rotated.stdout.strip()
    assert version_2 != version_1 and len(version_2) == 64
    assert deliver_as_project(world, version_1) == 401  # at once: no cache to wait out
    assert deliver_as_project(world, version_2) == 200
    other = auth.project_token(WEBHOOK_SECRET, 31)
    assert deliver_as_project(world, other) == 401

    # A superseded version is never printed: that would hand out a revoked token.
    old = project_token_tool(str(PROJECT_ID), "--version", "1", "--table", TABLE, "--secret-stdin")
    assert old.returncode == 1 and old.stdout == ""
    assert "version 1 is not project 14's current token (version 2): it was revoked by a rotation" in old.stderr


def test_project_token_finds_the_table_from_the_stack_and_names_a_missing_one(world: World):
    missing = project_token_tool(str(PROJECT_ID), "--stack", "no-such-stack")
    assert missing.returncode == 1 and missing.stdout == ""
    assert "the project's token version lives in the records table: give TABLE_NAME=<RecordsTableName>" in (
        missing.stderr
    )
    world.deploy_stack("review-apps-local")
    found = project_token_tool(str(PROJECT_ID), "--stack", "review-apps-local")  # table and secret: the stack's
    assert found.returncode == 0 and found.stdout.strip() == auth.project_token(WEBHOOK_SECRET, PROJECT_ID)
    wrong = project_token_tool(str(PROJECT_ID), "--table", "no-such-table", "--secret-parameter", "/x")
    assert wrong.returncode == 1 and "no such table 'no-such-table' in this account and Region" in wrong.stderr


# --------------------------------------------------------------------------- registration


def test_a_definition_ecs_refuses_is_a_problem_on_the_mr_and_frees_the_slot(fault_world):
    world = fault_world
    world.proxy.faults.append(
        Fault(
            f"{ECS}.RegisterTaskDefinition",
            1,
            400,
            {
                "__type": "ClientException",
                "message": "Invalid 'memory' setting for container 'web'. "
                "Container memory 1024 exceeds task memory 512.",
            },
        )
    )
    world.commit(SHA1, spec=ON_OPEN)
    answer = world.open_mr(1, SHA1)
    assert answer["status"] < 500
    record = world.record(1)
    assert record["status"] == "failed" and world.tasks() == []
    assert "ECS refused this review app's task definition" in world.note(1)
    assert "Container memory 1024 exceeds task memory 512" in world.note(1)
    assert world.running_slots() == set()


def test_project_token_without_aws_credentials_says_what_it_needs(tmp_path):
    import os

    bare = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MOTO_"))}
    bare.update(AWS_CONFIG_FILE=str(tmp_path / "none"), AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"))
    shown = subprocess.run(
        [sys.executable, "-m", "tools.project_token", "42", "--table", "records"],
        capture_output=True,
        text=True,
        timeout=60,
        env=bare,
    )
    assert shown.returncode == 2 and "Traceback" not in shown.stderr
    assert "needs AWS credentials and a Region" in shown.stderr

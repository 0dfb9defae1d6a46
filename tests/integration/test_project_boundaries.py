"""A hostile Developer (or maintainer) of one project, through the real handlers: each attack
answered on the MR or in the HTTP response, and nothing of anyone else's touched."""

from __future__ import annotations

import time

import pytest

from local import events
from local.world import (
    CLUSTER,
    EXECUTION_ROLE,
    INSTALL_ID,
    PROJECT_ID,
    PROJECT_PATH,
    SIGNING_SECRET,
    TASK_ROLE,
    WEBHOOK_SECRET,
    World,
)
from review_apps import auth

SHA1 = "1" * 40
SHA2 = "2" * 40
ON_OPEN = "task_definition: {family}\ntrigger: merge_request\n"
OTHER_ID, OTHER_PATH = 31, "team_b/payments"
SECRET_ENV = [{"name": "DATABASE_URL", "value": "postgres://prod-secret@payments-db/prod"}]


def derived(world: World) -> list[str]:
    return [a for a in world.ecs.list_task_definitions(status="ACTIVE")["taskDefinitionArns"] if "/review-app_" in a]


def try_spec(world: World, spec: str, files: dict[str, str] | None = None, iid: int = 1) -> dict:
    world.commit(SHA1, spec=spec, extra_files=files)
    return world.open_mr(iid, SHA1)


# --------------------------------------------------------------------------- 1. whose base definition


@pytest.mark.parametrize("tagged_for", [OTHER_PATH, None, "awesome_space/awesome_project_2", "awesome"])
def test_another_teams_or_an_untagged_definition_is_refused_revealing_nothing(world: World, tagged_for):
    world.register_base_task_definition(
        family="payments-prod",
        projects=tagged_for,
        containerDefinitions=[
            {
                "name": "web",
                "image": "payments:prod",
                "memory": 512,
                "environment": SECRET_ENV,
                "portMappings": [{"containerPort": 8000}],
                "command": ["serve"],
            }
        ],
    )
    answer = try_spec(world, ON_OPEN.format(family="payments-prod") + "image: busybox\ncommand: env\n")
    assert answer["status"] == 200 and world.tasks() == [] and derived(world) == []
    refused = world.note(1)
    world.commit(SHA2, spec=ON_OPEN.format(family="no-such-family"))
    world.push(1, SHA2)
    missing = world.note(1)
    # The same words whether it exists (and whose it is) or not; nothing of its content.
    assert refused.replace("payments-prod", "X").replace("11111111", "C") == missing.replace(
        "no-such-family", "X"
    ).replace("22222222", "C")
    assert "cannot be used by this project" in refused
    assert "prod-secret" not in refused and "web" not in refused.split("cannot be used")[1]


@pytest.mark.parametrize("tagged_for", [PROJECT_PATH, str(PROJECT_ID), "awesome_space/", "other/x 14"])
def test_a_definition_tagged_for_the_project_or_its_group_is_used(world: World, tagged_for):
    world.register_base_task_definition(family="shop-own", projects=tagged_for)
    assert try_spec(world, ON_OPEN.format(family="shop-own"))["status"] == 202
    assert len(world.tasks()) == 1


# --------------------------------------------------------------------------- 2. two role lists


def test_the_execution_role_can_never_become_the_apps_task_role(world: World):
    world.register_base_task_definition(family="swapped", taskRoleArn=EXECUTION_ROLE, executionRoleArn=EXECUTION_ROLE)
    assert try_spec(world, ON_OPEN.format(family="swapped"))["status"] == 200
    assert "as its task role, which review apps may not use" in world.note(1) and world.tasks() == []

    compose = "services:\n  web:\n    image: app\n    ports: ['80']\n"
    params = f"version: 1\ntask_definition:\n  task_role_arn: {EXECUTION_ROLE}\n  task_execution_role: {TASK_ROLE}\n"
    world.commit(
        SHA2,
        spec="compose: docker-compose.yml\necs_params: ecs-params.yml\ntrigger: merge_request\n",
        extra_files={"docker-compose.yml": compose, "ecs-params.yml": params},
    )
    world.push(1, SHA2)
    note = world.note(1)
    assert "as its task role, which review apps may not use" in note
    assert "as its task execution role, which review apps may not use" in note
    assert world.tasks() == [] and derived(world) == []


# --------------------------------------------------------------------------- 3. limits no file lifts


def test_a_huge_task_size_is_refused_whatever_sets_it(world: World):
    world.register_base_task_definition(family="huge", cpu="16384", memory="122880")
    try_spec(world, ON_OPEN.format(family="huge"))
    assert "this install allows at most 2048 CPU units and 8192 MiB" in world.note(1)
    compose = "services:\n  web:\n    image: app\n    ports: ['80']\n"
    params = "version: 1\ntask_definition:\n  task_size:\n    cpu_limit: 16 vCPU\n    mem_limit: 120GB\n"
    world.commit(
        SHA2,
        spec="compose: docker-compose.yml\necs_params: ecs-params.yml\ntrigger: merge_request\n",
        extra_files={"docker-compose.yml": compose, "ecs-params.yml": params},
    )
    world.push(1, SHA2)
    assert "this install allows at most 2048 CPU units and 8192 MiB" in world.note(1)
    assert world.tasks() == [] and derived(world) == []


# --------------------------------------------------------------------------- 4. hostile files


def alias_bomb(levels: int = 9) -> str:
    text = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    previous = "a"
    for name in "bcdefghijk"[: levels - 1]:
        text += f"{name}: &{name} [" + ",".join([f"*{previous}"] * 9) + "]\n"
        previous = name
    return text


@pytest.mark.parametrize("where", ["spec", "compose"])
def test_an_alias_bomb_is_refused_quickly_on_the_mr(world: World, where):
    if where == "spec":
        world.commit(SHA1, spec="task_definition: shop-web\ntrigger: merge_request\nx-" + alias_bomb())
    else:
        world.commit(
            SHA1,
            spec="compose: docker-compose.yml\ntrigger: merge_request\n",
            extra_files={"docker-compose.yml": "services:\n  web:\n    image: app\n" + alias_bomb()},
        )
    started = time.monotonic()
    answer = world.open_mr(1, SHA1)
    assert time.monotonic() - started < 2 and answer["status"] == 200
    assert "expands to more than review apps read" in world.note(1) and world.tasks() == []


def test_files_over_64_kib_are_refused_unread(world: World):
    big = "services:\n  web:\n    image: app\n    environment:\n" + "".join(
        f"      V{i}: {'x' * 60}\n" for i in range(1200)
    )
    world.commit(
        SHA1, spec="compose: docker-compose.yml\ntrigger: merge_request\n", extra_files={"docker-compose.yml": big}
    )
    assert world.open_mr(1, SHA1)["status"] == 200
    assert "`docker-compose.yml` is larger than 64 KiB" in world.note(1) and world.tasks() == []


def test_wrong_value_types_are_problems_on_the_mr_not_errors(world: World):
    compose = (
        "services:\n  web:\n    image: app\n    ports: ['80']\n    cpu_shares: lots\n    logging: [a, b]\n"
        "    healthcheck: {test: [CMD, x], retries: many}\n    depends_on: 7\n"
    )
    world.commit(
        SHA1, spec="compose: docker-compose.yml\ntrigger: merge_request\n", extra_files={"docker-compose.yml": compose}
    )
    answer = world.open_mr(1, SHA1)
    assert answer["status"] == 200 and world.tasks() == []
    note = world.note(1)
    assert "`services.web.cpu_shares:` `lots` must be CPU units" in note
    assert "`services.web.logging` must be a mapping" in note
    assert "`services.web.healthcheck.retries:` `many`" in note and "`services.web.depends_on` must be a list" in note


def test_echoed_values_cannot_mention_link_or_break_the_note(world: World):
    hostile = "@all `](https://evil.example) <img src=x> " + "y" * 300
    world.commit(SHA1, spec=f"task_definition: shop-web\ntrigger: {hostile!r}\nport: '@here'\n")
    world.open_mr(1, SHA1)
    note = world.note(1)
    line = next(ln for ln in note.splitlines() if "`trigger:`" in ln)
    echoed = line.split("`trigger:` ", 1)[1]
    code_span, rest = echoed[1:].split("`", 1)  # exactly one inline code span, closed where we closed it
    assert echoed.startswith("`") and rest.startswith(" is not supported")
    assert "@all" in code_span and "`" not in code_span and len(code_span) <= 100
    # Outside code spans, nothing of the file: no mention, link or markup a reader could be hit by.
    outside = "".join(part for i, part in enumerate(note.split("`")) if i % 2 == 0)
    for danger in ("@all", "@here", "https://evil", "<img"):
        assert danger not in outside


# --------------------------------------------------------------------------- 5. this install's things only


def test_the_reconciler_touches_only_this_installs_families_and_tasks(world: World):
    def register(family: str) -> str:
        return world.register_base_task_definition(family=family, projects=None)

    others = [
        register("review-app-shop-web"),
        register("review-app_review-apps-local-2_14-1"),
        register("review-app-14-1"),
    ]
    stale_ours = register(f"review-app_{INSTALL_ID}_14-9")
    foreign_task = world.ecs.run_task(
        cluster=CLUSTER,
        taskDefinition=others[1],
        launchType="FARGATE",
        group=f"review-app:{PROJECT_ID}:5",
        networkConfiguration={
            "awsvpcConfiguration": {"subnets": [world.subnet], "securityGroups": [world.security_group]}
        },
        tags=[{"key": "review-apps:install", "value": "review-apps-local-2"}],
    )["tasks"][0]["taskArn"]
    summary = world.reconcile()
    assert summary["retired"] == 1 and summary["stopped"] == 0
    active = world.ecs.list_task_definitions(status="ACTIVE")["taskDefinitionArns"]
    assert all(arn in active for arn in others) and stale_ours not in active
    assert world.task(foreign_task)["lastStatus"] != "STOPPED"


# --------------------------------------------------------------------------- 6. who may speak for a project


def project_token(project_id: int) -> str:
    return auth.project_token(WEBHOOK_SECRET, project_id)


def test_a_project_token_speaks_for_its_own_project_only(world: World):
    world.gitlab.state.add_project(OTHER_ID, OTHER_PATH)
    world.commit(SHA1, spec=ON_OPEN.format(family="shop-web"))
    world.gitlab.state.open_merge_request(PROJECT_ID, 1, sha=SHA1, source_branch="feature/a")
    world.open_mr(1, SHA1)
    [task] = world.tasks()
    # A maintainer of another project, holding that project's token, forges "merged" for ours.
    forged = events.merge_request_hook(
        "merge", project_id=PROJECT_ID, iid=1, sha=SHA1, source_branch="feature/a", project_path=PROJECT_PATH
    )
    answer = world.deliver(forged, "Merge Request Hook", token=project_token(OTHER_ID))
    assert answer["status"] == 401 and world.task(task["taskArn"])["lastStatus"] != "STOPPED"
    # The body naming the other project as `project` but ours as the MR's target: still refused.
    forged["project"]["id"] = OTHER_ID
    assert world.deliver(forged, "Merge Request Hook", token=project_token(OTHER_ID))["status"] == 401
    # Our own token may speak for our project.
    close = events.merge_request_hook(
        "close", project_id=PROJECT_ID, iid=1, sha=SHA1, source_branch="feature/a", project_path=PROJECT_PATH
    )
    world.mr(1)["state"] = "closed"
    assert world.deliver(close, "Merge Request Hook", token=project_token(PROJECT_ID))["status"] == 202
    assert world.task(task["taskArn"])["lastStatus"] == "STOPPED"


def test_with_a_project_token_the_path_and_mr_facts_come_from_gitlab(make_world):
    world = make_world(PROJECT_ALLOWLIST=OTHER_PATH)  # only the other team's project may have apps
    world.commit(SHA1, spec=ON_OPEN.format(family="shop-web"))
    world.gitlab.state.open_merge_request(PROJECT_ID, 1, sha=SHA1, source_branch="feature/a")
    # Our project's token, but a body claiming to be the allowed project's path.
    body = events.merge_request_hook(
        "open", project_id=PROJECT_ID, iid=1, sha=SHA1, source_branch="feature/a", project_path=OTHER_PATH
    )
    answer = world.deliver(body, "Merge Request Hook", token=project_token(PROJECT_ID))
    assert answer["status"] == 200 and "not in this install's project allowlist" in answer["body"]["message"]
    assert world.tasks() == []


def test_a_project_token_cannot_run_commands_for_another_projects_mr(world: World):
    world.gitlab.state.add_project(OTHER_ID, OTHER_PATH)
    world.commit(SHA1, spec=ON_OPEN.format(family="shop-web"))
    world.open_mr(1, SHA1)
    body = events.note_hook(
        "/review-app stop",
        project_id=PROJECT_ID,
        iid=1,
        sha=SHA1,
        source_branch="feature/checkout",
        project_path=PROJECT_PATH,
    )
    assert world.deliver(body, "Note Hook", token=project_token(OTHER_ID))["status"] == 401
    assert world.record(1)["status"] == "deploying"


def test_signed_deliveries_are_deduplicated_on_the_signed_webhook_id(make_world):
    import json

    world = make_world(WEBHOOK_SIGNING_SECRET_PARAMETER="/review-apps/signing-secret")
    world.commit(SHA1, spec=ON_OPEN.format(family="shop-web"))
    world.gitlab.state.open_merge_request(PROJECT_ID, 1, sha=SHA1, source_branch="feature/a")

    def deliver(body: dict, webhook_id: str, key: str) -> dict:
        raw = json.dumps(body)
        stamp = str(int(time.time()))
        signature = auth.sign(auth.signing_key(SIGNING_SECRET), webhook_id, stamp, raw.encode())
        return world.deliver(
            raw,
            "Merge Request Hook",
            **{
                "webhook-id": webhook_id,
                "webhook-timestamp": stamp,
                "webhook-signature": signature,
                "idempotency-key": key,
            },
        )

    opened = events.merge_request_hook(
        "open", project_id=PROJECT_ID, iid=1, sha=SHA1, source_branch="feature/a", project_path=PROJECT_PATH
    )
    assert deliver(opened, "msg_1", "same-key")["status"] == 202
    # The same signed delivery again, whatever its unsigned key says: the first answer, nothing new.
    assert deliver(opened, "msg_1", "other-key")["status"] == 202
    assert len(world.tasks()) == 1
    world.mr(1)["state"] = "closed"
    closed = events.merge_request_hook(
        "close", project_id=PROJECT_ID, iid=1, sha=SHA1, source_branch="feature/a", project_path=PROJECT_PATH
    )
    # A reused unsigned Idempotency-Key must not swallow a new signed delivery.
    assert deliver(closed, "msg_2", "same-key")["status"] == 202
    assert world.record(1)["status"] == "stopping"


# --------------------------------------------------------------------------- 7. deadlines without the image


def test_an_image_without_timeout_still_ends_on_time(make_world):
    world = make_world(SHARED_IMAGE_PREFIXES="gcr.io/distroless")
    container = {
        "name": "web",
        "image": "gcr.io/distroless/static:nonroot",
        "memory": 512,
        "entryPoint": ["/app"],
        "portMappings": [{"containerPort": 8080}],
    }
    world.register_base_task_definition(family="distroless", containerDefinitions=[container])
    assert try_spec(world, ON_OPEN.format(family="distroless") + "ttl: 20m\n")["status"] == 202
    [task] = world.tasks()
    web = world.ecs.describe_task_definition(taskDefinition=task["taskDefinitionArn"])["taskDefinition"][
        "containerDefinitions"
    ][0]
    assert web["entryPoint"] == ["/app"]  # untouched: `timeout` would not exist in this image
    assert f"mr-{PROJECT_ID}-1" in world.schedules()
    assert "its image is known to have no `timeout`" in world.record(1)["unwrapped_because"]
    assert "timeout" not in world.note(1)  # how it ends on time is the operator's business, not the reviewer's

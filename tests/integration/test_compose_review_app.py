"""A spec that points at docker-compose.yml + ecs-params.yml, through the real handlers."""

from __future__ import annotations

from local.world import World
from tests.unit.test_compose import COMPOSE, ECS_PARAMS, EXECUTION_ROLE

SHA1 = "c" * 40
SPEC = "compose: docker-compose.yml\necs_params: ecs-params.yml\ntrigger: merge_request\nttl: 1h\n"


def test_compose_files_become_the_running_task(world: World):
    world.commit(SHA1, spec=SPEC, extra_files={"docker-compose.yml": COMPOSE, "ecs-params.yml": ECS_PARAMS})
    assert world.open_mr(1, SHA1)["status"] == 202
    [task] = world.tasks()
    definition = world.ecs.describe_task_definition(taskDefinition=task["taskDefinitionArn"])["taskDefinition"]
    assert definition["family"] == "review-app_review-apps-local_14-1"
    assert (definition["cpu"], definition["memory"], definition["executionRoleArn"]) == ("512", "1024", EXECUTION_ROLE)
    backend, proxy = definition["containerDefinitions"]
    assert backend["image"].endswith(f"shop-backend:{SHA1}") and backend["memory"] == 512
    assert backend["mountPoints"][0]["sourceVolume"] == "uwsgi-socket"
    # nginx's entrypoint lives in its image: wrapping it in `timeout` would replace it, so the
    # deadline's schedule alone stops this app (and the note says so).
    assert "entryPoint" not in proxy and proxy["command"] == ["nginx", "-g", "daemon off;"]
    assert proxy["dependsOn"] == [{"containerName": "backend", "condition": "HEALTHY"}]
    assert [v["name"] for v in definition["volumes"]] == ["uwsgi-socket"]

    world.task_event(task["taskArn"], "RUNNING")
    note = world.note(1)
    assert "Review app: live" in note and ":80**" in note
    assert "`run_params.network_configuration` is ignored" in note


def test_unsupported_compose_keys_are_listed_and_nothing_launches(world: World):
    bad = COMPOSE.replace("  proxy:\n", "  proxy:\n    privileged: true\n    restart: always\n")
    world.commit(SHA1, spec=SPEC, extra_files={"docker-compose.yml": bad, "ecs-params.yml": ECS_PARAMS})
    assert world.open_mr(1, SHA1)["status"] == 200
    note = world.note(1)
    assert "`services.proxy.privileged`: `privileged` is not available on Fargate" in note
    assert "Also: `services.proxy.restart`" in note
    assert world.tasks() == []
    assert not [a for a in world.ecs.list_task_definitions()["taskDefinitionArns"] if "/review-app-" in a]


def test_a_missing_compose_file_is_explained(world: World):
    world.commit(SHA1, spec=SPEC, extra_files={"ecs-params.yml": ECS_PARAMS})
    world.open_mr(1, SHA1)
    assert "`docker-compose.yml` (named in `.gitlab/review-app.yml`) does not exist at commit `cccccccc`" in world.note(
        1
    )
    assert world.tasks() == []

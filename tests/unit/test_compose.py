"""docker-compose.yml + ecs-params.yml → the exact task definition, and every key we do not map."""

from __future__ import annotations

import pytest

from review_apps import compose, compose_checks, sizes, taskdef
from review_apps.limits import Limits
from review_apps.problems import Problems
from tests.unit.factories import SHA, placeholder_values, spec

EXECUTION_ROLE = "arn:aws:iam::111122223333:role/shop-review-execution"
TASK_ROLE = "arn:aws:iam::111122223333:role/shop-review-task"
LIMITS = Limits(task_role_arns=(TASK_ROLE,), execution_role_arns=(EXECUTION_ROLE,))
INSTALL = "review-apps-test"

COMPOSE = """\
version: "3.8"

x-logging: &logging
  driver: awslogs
  options:
    awslogs-group: /review-apps/shop
    awslogs-region: us-east-1
    awslogs-stream-prefix: shop

services:
  backend:
    image: 111122223333.dkr.ecr.us-east-1.amazonaws.com/shop-backend:${CI_COMMIT_SHA}
    command: uwsgi --ini /app/uwsgi.ini --socket /run/uwsgi/app.sock
    environment:
      DJANGO_SETTINGS_MODULE: shop.settings.review
      REVIEW_APP: "true"
      WORKERS: 2
    mem_limit: 512m
    mem_reservation: 256m
    volumes:
      - uwsgi-socket:/run/uwsgi
    logging: *logging
    healthcheck:
      test: ["CMD-SHELL", "test -S /run/uwsgi/app.sock"]
      interval: 10s
      timeout: 5s
      retries: 3
      start_period: 20s

  proxy:
    image: nginx:${NGINX_TAG:-1.27-alpine}
    command: ["nginx", "-g", "daemon off;"]
    ports:
      - "80:80"
    depends_on:
      backend:
        condition: service_healthy
    mem_limit: 134217728
    volumes:
      - type: volume
        source: uwsgi-socket
        target: /run/uwsgi
        read_only: true
    logging: *logging

volumes:
  uwsgi-socket: {}
"""

ECS_PARAMS = f"""\
version: 1
task_definition:
  ecs_network_mode: awsvpc
  task_execution_role: {EXECUTION_ROLE}
  task_role_arn: {TASK_ROLE}
  task_size:
    cpu_limit: 512
    mem_limit: 1GB
  services:
    backend:
      essential: true
run_params:
  network_configuration:
    awsvpc_configuration:
      subnets: [subnet-0123]
      security_groups: [sg-0123]
      assign_public_ip: ENABLED
"""

LOGGING = {
    "logDriver": "awslogs",
    "options": {
        "awslogs-group": "/review-apps/shop",
        "awslogs-region": "us-east-1",
        "awslogs-stream-prefix": "shop",
    },
}


def translate(compose_text: str = COMPOSE, params: str | None = ECS_PARAMS, limits: Limits = LIMITS):
    return compose.translate(
        compose_text,
        params,
        compose_path="docker-compose.yml",
        params_path="ecs-params.yml" if params is not None else None,
        placeholders=placeholder_values(SHA, "feature/x", 3, "g/p"),
        limits=limits,
        family="docker-compose.yml",
    )


def test_uwsgi_and_nginx_sharing_a_socket_become_the_expected_task_definition():
    result = translate()
    assert isinstance(result, compose.Translation), result
    assert result.task_definition == {
        "family": "docker-compose.yml",
        "networkMode": "awsvpc",
        "requiresCompatibilities": ["FARGATE"],
        "cpu": "512",
        "memory": "1024",
        "executionRoleArn": EXECUTION_ROLE,
        "taskRoleArn": TASK_ROLE,
        "volumes": [{"name": "uwsgi-socket"}],
        "containerDefinitions": [
            {
                "name": "backend",
                "image": f"111122223333.dkr.ecr.us-east-1.amazonaws.com/shop-backend:{SHA}",
                "essential": True,
                "command": ["uwsgi", "--ini", "/app/uwsgi.ini", "--socket", "/run/uwsgi/app.sock"],
                "environment": [
                    {"name": "DJANGO_SETTINGS_MODULE", "value": "shop.settings.review"},
                    {"name": "REVIEW_APP", "value": "true"},
                    {"name": "WORKERS", "value": "2"},
                ],
                "memory": 512,
                "memoryReservation": 256,
                "healthCheck": {
                    "command": ["CMD-SHELL", "test -S /run/uwsgi/app.sock"],
                    "interval": 10,
                    "timeout": 5,
                    "startPeriod": 20,
                    "retries": 3,
                },
                "logConfiguration": LOGGING,
                "mountPoints": [{"sourceVolume": "uwsgi-socket", "containerPath": "/run/uwsgi", "readOnly": False}],
            },
            {
                "name": "proxy",
                "image": "nginx:1.27-alpine",
                "essential": True,
                "command": ["nginx", "-g", "daemon off;"],
                "portMappings": [{"containerPort": 80, "hostPort": 80, "protocol": "tcp"}],
                "memory": 128,
                "dependsOn": [{"containerName": "backend", "condition": "HEALTHY"}],
                "logConfiguration": LOGGING,
                "mountPoints": [{"sourceVolume": "uwsgi-socket", "containerPath": "/run/uwsgi", "readOnly": True}],
            },
        ],
    }
    assert result.notices == [
        "`ecs-params.yml`: `run_params.network_configuration` is ignored: this install sets subnets, security "
        "groups and public IPs for every review app."
    ]


def test_the_proxy_serves_the_app_and_is_wrapped_only_when_asked():
    derived = taskdef.derive(
        translate().task_definition,
        spec(task_definition="", compose="docker-compose.yml", ttl_seconds=1800),
        project_id=14,
        mr_iid=3,
        placeholders=placeholder_values(SHA, "feature/x", 3, "g/p"),
        limits=LIMITS,
        install=INSTALL,
    )
    assert isinstance(derived, taskdef.DerivedTaskDefinition), derived
    assert derived.container == "proxy" and derived.port == 80
    backend, proxy = derived.register_kwargs["containerDefinitions"]
    # nginx's entrypoint is in its image only: wrapping would replace it, so the schedule alone
    # holds the deadline unless the spec asks for `timeout` too.
    assert "entryPoint" not in proxy and proxy["command"] == ["nginx", "-g", "daemon off;"]
    assert not derived.wrapped and "wrapping would replace it" in derived.unwrapped_because
    asked = taskdef.derive(
        translate().task_definition,
        spec(task_definition="", compose="docker-compose.yml", ttl_seconds=1800, wrap_in_timeout=True),
        project_id=14,
        mr_iid=3,
        placeholders={},
        limits=LIMITS,
        install=INSTALL,
    )
    proxy = asked.register_kwargs["containerDefinitions"][1]
    assert proxy["entryPoint"] == ["timeout", "-k", "30", "1800"]
    assert proxy["command"] == ["nginx", "-g", "daemon off;"]
    assert "entryPoint" not in backend
    assert derived.register_kwargs["family"] == "review-app_review-apps-test_14-3"
    assert derived.register_kwargs["volumes"] == [{"name": "uwsgi-socket"}]


def test_a_serving_container_that_is_not_essential_is_explained():
    params = ECS_PARAMS.replace("    backend:\n      essential: true", "    proxy:\n      essential: false")
    derived = taskdef.derive(
        translate(params=params).task_definition,
        spec(task_definition="", compose="docker-compose.yml"),
        project_id=14,
        mr_iid=3,
        placeholders={},
        limits=LIMITS,
        install=INSTALL,
    )
    assert isinstance(derived, Problems)
    assert "not essential" in derived.problems[0] and "essential: true" in derived.problems[0]


def test_compose_specification_without_version_and_list_forms():
    text = """\
services:
  web:
    image: registry/app:${CI_COMMIT_SHORT_SHA}
    entrypoint: ["/entry.sh"]
    environment:
      - MODE=review
      - EMPTY=
    ports:
      - target: 3000
        protocol: tcp
    depends_on: [cache]
    working_dir: /srv
    user: "1000"
    labels:
      team: shop
  cache:
    image: redis:7
    mem_reservation: 64m
    x-notes: extension fields are fine
"""
    result = translate(text, None)
    web, cache = result.task_definition["containerDefinitions"]
    assert web["image"] == f"registry/app:{SHA[:8]}" and web["entryPoint"] == ["/entry.sh"]
    assert web["environment"] == [{"name": "MODE", "value": "review"}, {"name": "EMPTY", "value": ""}]
    assert web["portMappings"] == [{"containerPort": 3000, "hostPort": 3000, "protocol": "tcp"}]
    assert web["dependsOn"] == [{"containerName": "cache", "condition": "START"}]
    assert (web["workingDirectory"], web["user"], web["dockerLabels"]) == ("/srv", "1000", {"team": "shop"})
    assert cache["memoryReservation"] == 64
    assert result.task_definition["cpu"] == "256" and result.task_definition["memory"] == "512"


@pytest.mark.parametrize(
    ("value", "mib"),
    [("512m", 512), ("1g", 1024), ("1GB", 1024), ("256M", 256), (268435456, 256), ("1.5g", 1536), ("64mb", 64)],
)
def test_memory_sizes(value, mib):
    assert compose.memory_mib(value) == mib


@pytest.mark.parametrize(("value", "mib"), [("1GB", 1024), ("0.5GB", 512), (512, 512), ("2048", 2048), ("512MB", 512)])
def test_task_memory(value, mib):
    assert sizes.memory_mib(value) == mib


@pytest.mark.parametrize(("value", "units"), [(256, 256), ("1024", 1024), ("0.25 vCPU", 256), ("1 vcpu", 1024)])
def test_task_cpu(value, units):
    assert sizes.cpu_units(value) == units


REFUSED_CASES = {
    "build": ("build: .", "review apps run images, they do not build them"),
    "privileged": ("privileged: true", "not available on Fargate"),
    "network_mode": ("network_mode: host", "every task uses `awsvpc`"),
    "pid": ("pid: host", "`pid` is not available"),
    "ipc": ("ipc: host", "`ipc` is not available"),
    "devices": ("devices: ['/dev/fuse']", "`devices` is not available"),
    "cap_add": ("cap_add: [NET_ADMIN]", "`cap_add` is not available"),
    "security_opt": ("security_opt: ['seccomp:unconfined']", "`security_opt` is not available"),
    "sysctls": ("sysctls: {net.core.somaxconn: 1024}", "`sysctls` are not supported"),
    "tmpfs": ("tmpfs: /tmp", "use a named volume"),
    "extra_hosts": ("extra_hosts: ['db:10.0.0.1']", "use real DNS names"),
    "dns": ("dns: 8.8.8.8", "the VPC's resolver is used"),
    "env_file": ("env_file: .env", "list the variables under `environment:` instead"),
    "ulimits": ("ulimits: {nofile: 65535}", "`ulimits` are not supported"),
    "volumes_from": ("volumes_from: [other]", "share a named volume instead"),
    "secrets": ("secrets: [db_password]", "name each secret under `secrets:` in `.gitlab/review-app.yml`"),
}


@pytest.mark.parametrize("key", sorted(REFUSED_CASES))
def test_keys_that_change_behaviour_refuse_the_launch(key):
    line, message = REFUSED_CASES[key]
    if key == "build":
        text = f"services:\n  web:\n    {line}\n    ports: ['80']\n"
    else:
        text = f"services:\n  web:\n    image: app\n    {line}\n    ports: ['80']\n"
    result = translate(text, None)
    assert isinstance(result, Problems)
    assert any(f"`services.web.{key}`" in p and message in p for p in result.problems), result.problems
    assert set(REFUSED_CASES) == set(compose_checks.REFUSED)


IGNORED_CASES = {
    "container_name": "container_name: shop",
    "links": "links: [db]",
    "networks": "networks: [front]",
    "expose": "expose: ['8000']",
    "restart": "restart: always",
    "hostname": "hostname: shop",
    "deploy": "deploy: {replicas: 2}",
    "stop_grace_period": "stop_grace_period: 1m",
}


@pytest.mark.parametrize("key", sorted(IGNORED_CASES))
def test_keys_that_make_no_difference_are_listed_but_launch(key):
    text = f"services:\n  web:\n    image: app\n    {IGNORED_CASES[key]}\n    ports: ['80']\n"
    result = translate(text, None)
    assert isinstance(result, compose.Translation), result
    assert any(f"`services.web.{key}`" in n for n in result.notices)
    assert set(IGNORED_CASES) == set(compose_checks.IGNORED)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("services:\n  web:\n    image: app\n    volumes: ['./src:/app']\n", "mounts a path from the host"),
        ("services:\n  web:\n    image: app\n    volumes: ['data:/data']\n", "is not declared under the top-level"),
        ("services:\n  web:\n    image: app\n    logging: {driver: json-file}\n", "use `awslogs`"),
        ("services:\n  web:\n    image: app\n    environment: [SECRET]\n", "has no value"),
        ("services:\n  web:\n    image: app:${TAG}\n", "`${TAG}`, which review apps cannot fill in"),
        ("services:\n  web:\n    image: app\n    depends_on: [db]\n", "names `db`, which is not a service"),
        ("services:\n  web:\n    image: app\n    mem_limit: lots\n", "is not a memory size"),
        ("services:\n  web:\n    image: app\n    frobnicate: yes\n", "`services.web.frobnicate` is not supported"),
        ("web:\n  image: app\n", "format 1, with services at the top level, is not supported"),
        ("services: [\n", "is not valid YAML at line"),
        ("services:\n  web:\n    image: app\n    logging:\n      driver: awslogs\n", "needs a task execution role"),
    ],
)
def test_compose_problems(text, message):
    result = translate(text, None)
    assert isinstance(result, Problems)
    assert any(message in p for p in result.problems), result.problems


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ("version: 2\n", "must say `version: 1`"),
        ("version: 1\ntask_definition:\n  ecs_network_mode: bridge\n", "`ecs_network_mode:` `bridge` is not available"),
        ("version: 1\ntask_definition:\n  task_size: {cpu_limit: lots}\n", "is not CPU units"),
        ("version: 1\ntask_definition:\n  task_size: {mem_limit: big}\n", "is not a size"),
        ("version: 1\ntask_definition:\n  services: {db: {essential: true}}\n", "is not a service of the compose"),
        (
            f"version: 1\ntask_definition:\n  task_role_arn: {TASK_ROLE}\n",
            "as its task role, which review apps may not use",
        ),
    ],
)
def test_ecs_params_problems(params, message):
    result = translate(
        "services:\n  web:\n    image: app\n    ports: ['80']\n",
        params,
        limits=Limits(execution_role_arns=(EXECUTION_ROLE,)),
    )
    assert isinstance(result, Problems)
    assert any(message in p for p in result.problems), result.problems


def test_yaml_anchors_and_merge_keys():
    text = """\
x-base: &base
  image: app
  environment: {MODE: review}
services:
  web:
    <<: *base
    ports: ['8080']
  worker:
    <<: *base
    command: celery worker
"""
    web, worker = translate(text, None).task_definition["containerDefinitions"]
    assert web["environment"] == worker["environment"] == [{"name": "MODE", "value": "review"}]
    assert worker["command"] == ["celery", "worker"]

"""Approval tests: for a catalogue of realistic inputs, the core's complete outputs (every note a
reviewer can see, every problem a Developer can be told, every task definition we would
register, every record transition) are compared with the reviewed copy in
tests/unit/approved/. Any change of wording or value shows up as a diff to review.

After an intended change: `APPROVE=1 pytest tests/unit/test_approved_outputs.py`, then read the
diff of tests/unit/approved/ before committing it.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import pytest

from review_apps import compose, lifecycle, ownership, pages, taskdef
from review_apps.events import MergeRequestEvent, NoteEvent, OtherEvent, PipelineEvent
from review_apps.lifecycle import addresses, sleep
from review_apps.lifecycle import reconcile as plans
from review_apps.limits import Limits
from review_apps.messages import gitlab_view, needs_publish, render_note
from review_apps.model.values import Cause, Status, StopReason
from review_apps.problems import Problems
from review_apps.spec import parse_spec
from tests.unit.factories import MR, NOW, SHA, SHA2, TASK, placeholder_values, record, spec, task_event

APPROVED = Path(__file__).parent / "approved"
TASK_ROLE = "arn:aws:iam::111122223333:role/shop-review-task"
EXEC_ROLE = "arn:aws:iam::111122223333:role/shop-review-execution"
LIMITS = Limits(task_role_arns=(TASK_ROLE,), execution_role_arns=(EXEC_ROLE,), max_cpu=4096, max_memory=16384)


def plain(value: Any) -> Any:
    """A JSON-ready copy: dataclasses as dicts, tuples as lists, enums as their strings."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {"type": type(value).__name__, **{k: plain(v) for k, v in dataclasses.asdict(value).items()}}
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, str):
        return str(value)
    return value


def check(name: str, cases: dict[str, Any]) -> None:
    text = json.dumps({k: plain(v) for k, v in cases.items()}, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
    path = APPROVED / f"{name}.json"
    if os.environ.get("APPROVE"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
    approved = path.read_text() if path.exists() else ""
    if text != approved:
        expected, got = json.loads(approved or "{}"), json.loads(text)
        changed = sorted(k for k in set(expected) | set(got) if expected.get(k) != got.get(k))
        first = changed[0]
        pytest.fail(
            f"{name}: {len(changed)} case(s) differ from tests/unit/approved/{name}.json, e.g. {first!r}:\n"
            f"approved: {json.dumps(expected.get(first), indent=1)[:1500]}\n"
            f"now:      {json.dumps(got.get(first), indent=1)[:1500]}\n"
            "If the change is intended: APPROVE=1 pytest tests/unit/test_approved_outputs.py, then review the diff."
        )


# --------------------------------------------------------------------------- what the MR shows

LIVE = dict(
    status=Status.LIVE,
    url="http://10.0.0.7:8000",
    live_at=NOW + 40,
    deadline=NOW + 1840,
    cpu_units=512,
    memory_mib=1024,
    architecture="x86_64",
    capacity="on_demand",
    rate_microusd=25_000,
)
RECORDS = {
    "deploying": record(),
    "deploying, replacing an older commit": record(replaced_commit=SHA2),
    "deploying, wrapped in timeout": record(timeout_wrapped=True),
    "deploying, not wrapped": record(unwrapped_because="its entrypoint is in the image only"),
    "deploying, ttl capped, with notices": record(ttl_capped_from=36000, notices=["`x` is ignored"]),
    "live": record(**LIVE),
    "live on spot, arm64, public ip": record(
        **{**LIVE, "capacity": "spot", "architecture": "arm64", "public_ip": True}
    ),
    "live, extended, with a command answer": record(
        **{**LIVE, "extended_seconds": 3600, "ttl_seconds": 5400, "last_command": "@alice: extended by 1h."}
    ),
    "live, url caveat": record(**{**LIVE, "url_note": "No public IP was assigned."}),
    "live, newer commit rejected": record(**{**LIVE, "problems": ["`port:` `0` must be a number"]}),
    "stopping after going live": record(**{**LIVE, "status": Status.STOPPING, "stop_reason": StopReason.MERGED}),
    "stopping before going live": record(status=Status.STOPPING, stop_reason=StopReason.CLOSED),
    "queued": record(
        status=Status.QUEUED,
        task_arn="",
        queue_place=3,
        queued_at=NOW,
        queue_detail="this install runs at most 2 review apps at once",
    ),
    "left the queue, closed": record(
        status=Status.STOPPED,
        task_arn="",
        launched_at=0,
        queued_at=NOW,
        stop_reason=StopReason.CLOSED,
        stopped_at=NOW + 5,
    ),
    "left the queue, unlabeled": record(
        status=Status.STOPPED,
        task_arn="",
        launched_at=0,
        queued_at=NOW,
        stop_reason=StopReason.UNLABELED,
        stopped_at=NOW + 5,
    ),
    "failed, runtask refused": record(status=Status.FAILED, problems=["Capacity is unavailable"], stopped_at=NOW),
    "failed, image pull": record(
        status=Status.FAILED,
        stop_reason=StopReason.FAILED_TO_START,
        stop_detail="CannotPullContainerError: not found",
        deployment_id=9,
        environment_id=4,
    ),
    "failed, crashed before live": record(
        status=Status.FAILED, stop_reason=StopReason.CRASHED, stop_detail="container `web` exited with code 1"
    ),
    "rejected": record(status=Status.REJECTED, task_arn="", problems=["`trigger:` `push` is not supported"]),
    "nothing yet, answered": record(status=Status.NONE, task_arn="", last_command="@bob: nothing has been deployed."),
    "merge request trigger": record(status=Status.FAILED, trigger="merge_request", problems=["x"]),
}
for reason in StopReason:
    if reason != StopReason.NONE:
        RECORDS[f"stopped: {reason}"] = record(
            **{
                **LIVE,
                "status": Status.STOPPED,
                "stop_reason": reason,
                "stop_detail": "some detail",
                "stopped_at": NOW + 1840,
            }
        )
# A crash: its logs one click away, and its last lines (or why they are not shown).
CRASH = {
    **LIVE,
    "status": Status.STOPPED,
    "stop_reason": StopReason.CRASHED,
    "stopped_at": NOW + 600,
    "stop_detail": "container `web` exited with code 1",
    "container": "web",
    "log_streams": ["web\t/review-apps/14/shop\treview\teu-west-1"],
}
RECORDS["crashed, last lines shown"] = record(
    **CRASH, crash_log="Booting\n@bob ```see``` [x](https://e.example)\nKeyError: 'X'"
)
RECORDS["crashed, public project"] = record(**CRASH, crash_log_hidden=True)
RECORDS["crashed before going live, lines shown"] = record(
    **{**CRASH, "status": Status.FAILED, "live_at": 0}, crash_log="exec format error"
)
RECORDS["live, with its logs"] = record(**{**LIVE, "log_streams": CRASH["log_streams"]})
# Starting, phase by phase; then how the start went.
for phase in ("capacity", "pulling", "starting"):
    RECORDS[f"deploying, {phase}"] = record(
        phase=phase, task_arn="arn:aws:ecs:eu-west-1:1:task/c/0123abcd", log_streams=CRASH["log_streams"]
    )
RECORDS["live, started in 47s"] = record(
    **{**LIVE, "task_created_at": NOW - 47, "pull_started_at": NOW - 40, "pull_stopped_at": NOW - 9}
)
RECORDS["live, after a slow pull"] = record(
    **{**LIVE, "task_created_at": NOW - 130, "pull_started_at": NOW - 125, "pull_stopped_at": NOW - 10}
)
RECORDS["stopped by ttl, no detail"] = record(
    **{**LIVE, "status": Status.STOPPED, "stop_reason": StopReason.TTL, "stopped_at": NOW + 1840}
)
RECORDS["stopped before going live, requested"] = record(
    status=Status.STOPPED, stop_reason=StopReason.MERGED, stopped_at=NOW + 9
)
# Address mode: the host is the address from the launch on.
ADDRESS = dict(
    host="shop-mr3-p14.review.example.com",
    url="https://shop-mr3-p14.review.example.com",
    health_check_path="/healthz",
    target_group_arn="tg",
    rule_arn="rule",
    viewers="members:20",
)
RECORDS["address mode, deploying"] = record(**ADDRESS)
RECORDS["address mode, live, anyone may open it"] = record(**{**LIVE, **ADDRESS, "viewers": "public"})
RECORDS["address mode, live, developers only"] = record(
    **{**LIVE, **ADDRESS, "viewers": "members:30", "project_path": "acme/shop"}
)
RECORDS["address mode, deploying, replacing"] = record(**ADDRESS, replaced_commit=SHA2)
RECORDS["address mode, live, waiting for its first health check"] = record(
    **{**LIVE, **ADDRESS, "routed_target": "10.0.0.7:8000"}
)
RECORDS["address mode, live"] = record(**{**LIVE, **ADDRESS, "routed_target": "10.0.0.7:8000", "healthy_at": NOW + 47})
RECORDS["address mode, live, started in phases, then healthy"] = record(
    **{
        **LIVE,
        **ADDRESS,
        "routed_target": "10.0.0.7:8000",
        "launched_at": NOW - 3,
        "mr_updated_at": NOW - 5,
        "task_created_at": NOW,
        "pull_started_at": NOW + 2,
        "pull_stopped_at": NOW + 33,
        "healthy_at": NOW + 47,
    }
)
RECORDS["queued, far back"] = record(status=Status.QUEUED, queue_place=21, queue_detail="the install runs at most 3")
RECORDS["address mode, live, health check failing"] = record(
    **{
        **LIVE,
        **ADDRESS,
        "routed_target": "10.0.0.7:8000",
        "health_note": "The load balancer's health check fails: the app answered 404 to `/healthz` on port 8000, "
        "not 200-399. The address answers only once the check passes: fix the app, or `health_check:` "
        "and `port:` in the spec.",
    }
)
RECORDS["address mode, live, no route"] = record(**{**LIVE, **ADDRESS, "url_note": "The load balancer is full."})
RECORDS["address mode, stopped by ttl"] = record(
    **{**LIVE, **ADDRESS, "status": Status.STOPPED, "stop_reason": StopReason.TTL, "stopped_at": NOW + 1840}
)
# Sleep and wake.
SLEEPY = dict(
    **ADDRESS,
    sleep_after=900,
    first_live_at=NOW - 7200,
    start_seconds=45,
    history=["woke at 06:02 for a visit", "slept at 06:31 after 15m idle"],
)
RECORDS["address mode, live, sleeps when idle"] = record(**{**LIVE, **SLEEPY, "history": []})
RECORDS["address mode, live after a wake"] = record(
    **{**LIVE, **SLEEPY, "awake_seconds": 1800, "awake_cost_microusd": 12_500, "awake_counted_until": NOW - 1200}
)
RECORDS["address mode, falling asleep"] = record(
    **{
        **LIVE,
        **SLEEPY,
        "status": Status.STOPPING,
        "stop_reason": StopReason.ASLEEP,
        "stop_detail": "nobody visited it for 15m",
    }
)
RECORDS["address mode, asleep"] = record(
    **{
        **LIVE,
        **SLEEPY,
        "status": Status.ASLEEP,
        "stop_reason": StopReason.ASLEEP,
        "stop_detail": "nobody visited it for 15m",
        "stopped_at": NOW + 940,
        "asleep_since": NOW + 940,
        "awake_seconds": 2700,
        "awake_counted_until": NOW + 940,
        "awake_cost_microusd": 18_750,
    }
)
RECORDS["address mode, asleep after its ttl"] = record(
    **{
        **LIVE,
        **SLEEPY,
        "status": Status.ASLEEP,
        "stop_reason": StopReason.TTL,
        "stopped_at": NOW + 1840,
        "asleep_since": NOW + 1840,
        "awake_seconds": 1800,
        "awake_counted_until": NOW + 1840,
        "awake_cost_microusd": 12_500,
    }
)
RECORDS["address mode, waking"] = record(**ADDRESS, sleep_after=900, history=["woke at 06:40 for a visit"])
RECORDS["address mode, merged while asleep"] = record(
    **{
        **LIVE,
        **SLEEPY,
        "status": Status.STOPPED,
        "stop_reason": StopReason.MERGED,
        "stopped_at": NOW + 940,
        "asleep_since": NOW + 940,
        "awake_seconds": 2700,
        "awake_counted_until": NOW + 940,
        "awake_cost_microusd": 18_750,
    }
)
RECORDS["address mode, failed, listener full"] = record(
    **ADDRESS, status=Status.FAILED, stopped_at=NOW, problems=["The load balancer … is full"]
)


def test_what_the_mr_shows_for_every_kind_of_record():
    check(
        "mr_views",
        {
            name: {"note": render_note(r), "view": gitlab_view(r), "needs_publish": needs_publish(r)}
            for name, r in RECORDS.items()
        },
    )


# --------------------------------------------------------------------------- the spec


SPECS = {
    "minimal": "task_definition: shop-web\n",
    "everything": (
        "task_definition: arn:aws:ecs:eu-west-1:111122223333:task-definition/shop-web:7\ncontainer: web\n"
        "port: 8080\nimage: reg/shop:${CI_COMMIT_SHA}\ncommand: gunicorn 'shop.wsgi:app' -b 0.0.0.0\n"
        "ttl: 1h30m\ntrigger: merge_request\ncpu: 1 vCPU\nmemory: 2GB\ncapacity: spot\n"
        "architecture: arm64\nlabel: review-app\ndrafts: true\nwrap_in_timeout: false\n"
    ),
    "command as list": "task_definition: a:3\ncommand: [npm, start, 3000]\n",
    "ttl over the maximum": "task_definition: a\nttl: 9h\n",
    "ttl in seconds": "task_definition: a\nttl: 600\n",
    "compose": "compose: ./deploy/docker-compose.yml\necs_params: deploy/ecs-params.yml\n",
    "compose and task definition": "compose: dc.yml\ntask_definition: a\n",
    "ecs_params alone": "task_definition: a\necs_params: p.yml\n",
    "nothing": "trigger: pipeline\n",
    "not a mapping": "- a\n- b\n",
    "not yaml": "task_definition: [\n",
    "unknown keys": "task_definition: a\nimgae: x\n7: y\n",
    "bad task definition": "task_definition: 'a b'\n",
    "bad container": "task_definition: a\ncontainer: ''\n",
    "bad ports": "task_definition: a\nport: 70000\n",
    "bool port": "task_definition: a\nport: true\n",
    "bad image": "task_definition: a\nimage: ''\n",
    "unknown placeholder": "task_definition: a\nimage: r/x:${CI_JOB_ID}\n",
    "bad command": "task_definition: a\ncommand: {a: 1}\n",
    "empty command": "task_definition: a\ncommand: []\n",
    "bad ttl": "task_definition: a\nttl: forever\n",
    "short ttl": "task_definition: a\nttl: 30s\n",
    "bad trigger": "task_definition: a\ntrigger: push\n",
    "sizes too big": "task_definition: a\ncpu: 8 vCPU\nmemory: 64GB\n",
    "sizes unreadable": "task_definition: a\ncpu: lots\nmemory: big\n",
    "bad capacity and architecture": "task_definition: a\ncapacity: reserved\narchitecture: riscv\n",
    "bad label, drafts, wrap": "task_definition: a\nlabel: 3\ndrafts: maybe\nwrap_in_timeout: sometimes\n",
    "paths outside the repository": "compose: ../x.yml\necs_params: /etc/p.yml\n",
    "path not a string": "compose: 3\n",
    "hostile echo": 'task_definition: a\ntrigger: "@all `](https://evil.example)"\n',
}


def test_every_spec_answer():
    check("specs", {name: parse_spec(text, 1800, 4 * 3600, 4096, 16384) for name, text in SPECS.items()})


# --------------------------------------------------------------------------- compose and ecs-params

BASE_COMPOSE = "services:\n  web:\n    image: app\n    ports: ['80']\n"
COMPOSE = {
    "full service": """\
services:
  web:
    image: reg/web:${CI_COMMIT_SHORT_SHA}
    command: ["serve", "--port", 80]
    entrypoint: /entry.sh --quiet
    environment: {MODE: review, DEBUG: false, LEVEL: 3, EMPTY: ""}
    ports: ["8080:80/tcp", {target: 443, protocol: tcp}]
    mem_limit: 512m
    mem_reservation: 128m
    cpu_shares: 256
    working_dir: /srv
    user: "1000"
    stdin_open: true
    tty: true
    labels: [team=shop, tier]
    healthcheck: {test: "curl -f localhost", interval: 10s, timeout: 2s, start_period: 30s, retries: 3}
    depends_on: {db: {condition: service_healthy}, cache: {}}
    volumes: ["data:/data:ro", {type: volume, source: data, target: /more}]
    container_name: x
    restart: always
    x-note: kept out
  db:
    image: postgres:16
    environment: ["POSTGRES_PASSWORD=review", "A=b=c"]
    deploy: {resources: {limits: {memory: 1g}, reservations: {memory: 256m}}}
    healthcheck: {test: [CMD, pg_isready], retries: 5}
  cache:
    image: redis:7
    mem_limit: 100000000
    healthcheck: {disable: true}
    labels: {a: 1}
volumes:
  data: {}
""",
    "compose with awslogs": """\
services:
  web:
    image: app
    mem_limit: 256m
    logging:
      driver: awslogs
      options: {awslogs-group: ecs-fargate, awslogs-region: eu-west-1, awslogs-stream-prefix: web}
""",
    "refused keys": "services:\n  web:\n    image: app\n    privileged: true\n    network_mode: host\n"
    "    devices: [/dev/x]\n    build: .\n    env_file: .env\n    tmpfs: /run\n",
    "build with image": "services:\n  web:\n    image: app\n    build: .\n",
    "build without image": "services:\n  web:\n    build: .\n",
    "unsupported key": "services:\n  web:\n    image: app\n    scale: 3\n",
    "variables": "services:\n  web:\n    image: app:${TAG:-latest}\n    command: echo $$HOME ${CI_MERGE_REQUEST_IID} "
    "${CI_PROJECT_PATH_SLUG}\n    environment: ['X=${SECRET}', 'Y=${CI_COMMIT_REF_SLUG}']\n",
    "variables filled": "services:\n  web:\n    image: app:${TAG:-latest}\n"
    "    command: echo $$HOME ${CI_MERGE_REQUEST_IID} "
    "${CI_PROJECT_PATH_SLUG} ${CI_COMMIT_SHA}\n    environment: ['Y=${CI_COMMIT_REF_SLUG}']\n",
    "environment without value": "services:\n  web:\n    image: app\n    environment: [TOKEN]\n",
    "bad ports": "services:\n  web:\n    image: app\n    ports: ['8000-8010:8000-8010', {target: x}, true]\n",
    "bad healthcheck": "services:\n  web:\n    image: app\n    healthcheck: {test: 7}\n",
    "healthcheck none": "services:\n  web:\n    image: app\n    healthcheck: {test: [NONE]}\n",
    "bad depends_on": "services:\n  web:\n    image: app\n    depends_on: {nope: {}, db: {condition: sometime}}\n"
    "  db:\n    image: db\n",
    "bad logging driver": "services:\n  web:\n    image: app\n    logging: {driver: json-file}\n",
    "host volumes": "services:\n  web:\n    image: app\n    volumes: ['./src:/src', 'undeclared:/x', 'data:rel']\n"
    "volumes:\n  data: {}\n",
    "bad memory": "services:\n  web:\n    image: app\n    mem_limit: lots\n",
    "bad service name": "services:\n  'web app':\n    image: app\n",
    "format 1": "web:\n  image: app\n",
    "no services": "services: {}\n",
    "not yaml": "services: [\n",
}
PARAMS = {
    "full params": f"""\
version: 1
task_definition:
  ecs_network_mode: awsvpc
  task_role_arn: {TASK_ROLE}
  task_execution_role: {EXEC_ROLE}
  task_size: {{cpu_limit: 1 vCPU, mem_limit: 2GB}}
  services:
    web: {{essential: false, cpu_shares: 3}}
run_params:
  network_configuration:
    awsvpc_configuration: {{subnets: [s], assign_public_ip: ENABLED}}
""",
    "wrong version and mode": "version: 2\ntask_definition:\n  ecs_network_mode: bridge\n",
    "roles not allowed": f"version: 1\ntask_definition:\n  task_role_arn: {EXEC_ROLE}\n"
    f"  task_execution_role: {TASK_ROLE}\n",
    "bad sizes": "version: 1\ntask_definition:\n  task_size: {cpu_limit: lots, mem_limit: big}\n",
    "unknown service": "version: 1\ntask_definition:\n  services: {db: {essential: true}}\n",
    "not a mapping": "- 1\n",
}


def translate(compose_text: str, params: str | None) -> Any:
    return compose.translate(
        compose_text,
        params,
        compose_path="docker-compose.yml",
        params_path="ecs-params.yml" if params is not None else None,
        placeholders=placeholder_values(SHA, "feature/X y", 3, "Group/Project"),
        limits=LIMITS,
        family="compose",
    )


def test_every_compose_translation():
    cases: dict[str, Any] = {name: translate(text, None) for name, text in COMPOSE.items()}
    cases.update({f"params: {name}": translate(BASE_COMPOSE, text) for name, text in PARAMS.items()})
    cases["awslogs without execution role"] = translate(COMPOSE["compose with awslogs"], "version: 1\n")
    cases["awslogs with execution role"] = translate(
        COMPOSE["compose with awslogs"], f"version: 1\ntask_definition:\n  task_execution_role: {EXEC_ROLE}\n"
    )
    check("compose", cases)


# --------------------------------------------------------------------------- derived task definitions


def base_td(**changes: Any) -> dict[str, Any]:
    td: dict[str, Any] = {
        "family": "shop-web",
        "networkMode": "awsvpc",
        "requiresCompatibilities": ["FARGATE"],
        "cpu": "512",
        "memory": "1024",
        "executionRoleArn": EXEC_ROLE,
        "taskRoleArn": TASK_ROLE,
        "volumes": [{"name": "data"}],
        "ephemeralStorage": {"sizeInGiB": 30},
        "containerDefinitions": [
            {
                "name": "web",
                "image": "reg/shop:latest",
                "entryPoint": ["/entry.sh"],
                "command": ["serve"],
                "portMappings": [{"containerPort": 8000}],
                "essential": True,
            }
        ],
    }
    td.update(changes)
    return td


def two_containers() -> dict[str, Any]:
    return base_td(
        containerDefinitions=[
            {"name": "app", "image": "reg/app:1", "command": ["run"], "portMappings": [{"containerPort": 3000}]},
            {"name": "proxy", "image": "nginx:1", "portMappings": [{"containerPort": 80}], "essential": False},
            {"name": "sidecar", "image": "gcr.io/distroless/static:1", "entryPoint": ["/agent"]},
        ]
    )


DERIVE = {
    "defaults": (base_td(), spec()),
    "spec overrides": (
        base_td(),
        spec(
            image="reg/shop:${CI_COMMIT_SHORT_SHA}",
            command=("gunicorn", "a:b"),
            port=9000,
            cpu=1024,
            memory=2048,
            architecture="arm64",
            ttl_seconds=3600,
        ),
    ),
    "no entrypoint": (
        base_td(
            containerDefinitions=[
                {"name": "web", "image": "x", "command": ["serve"], "portMappings": [{"containerPort": 1}]}
            ]
        ),
        spec(),
    ),
    "asked to wrap, nothing known": (
        base_td(containerDefinitions=[{"name": "web", "image": "x", "portMappings": [{"containerPort": 1}]}]),
        spec(wrap_in_timeout=True),
    ),
    "asked to wrap, command known": (
        base_td(
            containerDefinitions=[
                {"name": "web", "image": "x", "command": ["a"], "portMappings": [{"containerPort": 1}]}
            ]
        ),
        spec(wrap_in_timeout=True),
    ),
    "asked not to wrap": (base_td(), spec(wrap_in_timeout=False)),
    "distroless": (
        base_td(
            containerDefinitions=[
                {
                    "name": "web",
                    "image": "gcr.io/distroless/base",
                    "entryPoint": ["/app"],
                    "portMappings": [{"containerPort": 1}],
                }
            ]
        ),
        spec(),
    ),
    "several containers, none chosen": (two_containers(), spec()),
    "several containers, the one with a port": (two_containers(), spec(container="app")),
    "a non-essential serving container": (two_containers(), spec(container="proxy")),
    "unknown container": (two_containers(), spec(container="nope")),
    "no port": (base_td(containerDefinitions=[{"name": "web", "image": "x", "command": ["a"]}]), spec()),
    "not fargate": (base_td(networkMode="bridge", requiresCompatibilities=["EC2"]), spec()),
    "roles swapped": (base_td(taskRoleArn=EXEC_ROLE, executionRoleArn=TASK_ROLE), spec()),
    "too big": (base_td(cpu="8192", memory="32768"), spec()),
    "not a fargate size": (base_td(), spec(cpu=256, memory=8192)),
    "two containers": (two_containers(), spec(container="app")),
    "base architecture arm": (
        base_td(runtimePlatform={"cpuArchitecture": "ARM64", "operatingSystemFamily": "LINUX"}),
        spec(),
    ),
}


def test_every_derived_task_definition():
    cases = {}
    for name, (td, the_spec) in DERIVE.items():
        limits = LIMITS
        cases[name] = taskdef.derive(
            td,
            the_spec,
            project_id=14,
            mr_iid=3,
            install="review-apps-test",
            placeholders=placeholder_values(SHA, "feature/x", 3, "g/p"),
            limits=limits,
            max_ttl=4 * 3600,
        )
    check("derived", cases)


def test_every_ownership_answer():
    rules = ownership.ImageRules(
        "111122223333",
        "us-east-1",
        "registry.gitlab.example",
        ("public.ecr.aws/docker/library/postgres", "docker.io/library/nginx"),
    )
    ecr = "111122223333.dkr.ecr.us-east-1.amazonaws.com"
    images = [
        f"{ecr}/shop:1",
        f"{ecr}/theirs:1",
        f"{ecr}/missing:1",
        f"{ecr}/shop@sha256:" + "a" * 64,
        "111122223333.dkr.ecr.eu-west-1.amazonaws.com/shop:1",
        "999988887777.dkr.ecr.us-east-1.amazonaws.com/shop",
        f"{ecr}.evil.com/shop:1",
        "registry.gitlab.example/g/p/web:1",
        "registry.gitlab.example/g/p-evil/web",
        "registry.gitlab.example/g/p",
        "public.ecr.aws/docker/library/postgres:16",
        "public.ecr.aws/docker/library/postgres-evil:16",
        "nginx:1.27",
        "nginx-evil",
        "busybox",
        "",
        "Nginx",
        "nginx:",
        "a b",
        "nginx@sha256:short",
        "localhost:5000/x",
        42,
    ]
    repository_tags = {"shop": "g/", "theirs": "team_b/"}
    role_tags = {
        "arn:aws:iam::111122223333:role/ok": "g/p",
        "arn:aws:iam::111122223333:role/theirs": "team_b/",
        "arn:aws:iam::111122223333:role/everyone": "*",
    }
    kwargs = {
        "taskRoleArn": "arn:aws:iam::111122223333:role/theirs",
        "executionRoleArn": "arn:aws:iam::111122223333:role/everyone",
        "containerDefinitions": [{"name": "web", "image": f"{ecr}/theirs:1"}, {"name": "db", "image": "busybox"}],
    }
    cases = {
        "parsed": {str(i): ownership.parse_image(i) for i in images},
        "allowed for g/p (id 14)": {
            str(i): ownership.image_allowed(i, 14, "g/p", rules, repository_tags) for i in images
        },
        "needs": ownership.needs(kwargs, rules),
        "problems": ownership.problems(kwargs, 14, "g/p", rules, role_tags, repository_tags),
        "tag values naming g/p (14)": {
            v: ownership.names_project(v, 14, "g/p")
            for v in ("*", "14", "g/p", "g/", "G/P", "g", "g/p2", "g/p/", "team_b/ 14", "", "  ", "141", "/")
        },
        "log groups": {
            g: ownership.project_log_group("/review-apps/", 14, g)
            for g in ("web", "/web", "/review-apps/web", "/review-apps/14/web", "/review-apps/15/web", "/ecs/x")
        },
    }
    check("ownership", cases)


# --------------------------------------------------------------------------- a review app's life, step by step


def test_every_record_transition():
    launch = lifecycle.Launch(spec(ttl_seconds=2700, capacity="spot"), SHA, updated_at=NOW - 1)
    compute = lifecycle.Compute(
        cpu=512, memory=1024, architecture="arm64", capacity="spot", public_ip=True, rate_per_hour=0.0123456
    )
    claim = lifecycle.claim_launch(None, MR, launch, NOW, ("a notice",), compute)
    running = lifecycle.launched(
        claim, task_arn=TASK, task_definition_arn="td:1", container="web", port=8000, wrapped=True
    )
    live = lifecycle.went_live(running, task_event("RUNNING"), url="http://10.0.0.7:8000", url_note="", now=NOW + 45)
    replacing = lifecycle.claim_launch(live, MR, lifecycle.Launch(spec(), SHA2, updated_at=NOW + 60), NOW + 60)
    superseding = lifecycle.claim_launch(replacing, MR, lifecycle.Launch(spec(), "c" * 40), NOW + 61)
    stopping = lifecycle.stop_requested(live, StopReason.MERGED, NOW + 99, detail="@alice", updated_at=NOW + 99)
    cases = {
        "claim": claim,
        "launched": running,
        "went live": live,
        "replacing a live app": replacing,
        "superseding an unfinished claim": superseding,
        "stop requested": stopping,
        "stopped by the merge": lifecycle.stopped(
            stopping, task_event("STOPPED", exit_code=143, stop_code="UserInitiated"), NOW + 120
        ),
        "stopped by ttl": lifecycle.stopped(live, task_event("STOPPED", exit_code=124), NOW + 3000),
        "stopped by the schedule": lifecycle.stopped(
            live,
            task_event(
                "STOPPED", exit_code=143, stop_code="UserInitiated", stopped_reason=lifecycle.DEADLINE_STOP_REASON
            ),
            NOW + 3000,
        ),
        "stopped, never ran": lifecycle.stopped(running, task_event("STOPPED", exit_code=1, started=False), NOW + 50),
        "launch failed": lifecycle.launch_failed(claim, ("no capacity",), NOW + 5),
        "rejected, no record": lifecycle.rejected(None, MR, SHA, ("bad",), NOW),
        "rejected while live": lifecycle.rejected(live, MR, SHA2, ("bad",), NOW),
        "queued": lifecycle.queued(claim, None, "full"),
        "queued again keeps its place": lifecycle.queued(
            claim, dataclasses.replace(claim, status=Status.QUEUED, queued_at=NOW - 50, queue_place=2), "full"
        ),
        "left the queue": lifecycle.left_queue(
            lifecycle.queued(claim, None, "full"), StopReason.CLOSED, "", NOW + 7, NOW + 8
        ),
        "vanished, live": lifecycle.vanished(live, NOW + 9000),
        "vanished, claim only": lifecycle.vanished(claim, NOW + 9000),
        "vanished, stopped while launching": lifecycle.vanished(
            dataclasses.replace(claim, task_arn="", stop_reason=StopReason.CLOSED), NOW + 9000
        ),
        "vanished, never ran": lifecycle.vanished(running, NOW + 9000),
        "launch ids": [lifecycle.launch_id(14, 3, SHA, rev) for rev in (0, 1, 2)],
    }
    # Address mode: the host from the claim on, the route kept by a replacement and not by a relaunch.
    host = "shop-mr3-p14.review.example.com"
    routed_claim = lifecycle.claim_launch(None, MR, launch, NOW, (), compute, host=host, viewers="members:20")
    routed = lifecycle.launched(
        routed_claim,
        task_arn=TASK,
        task_definition_arn="td:1",
        container="web",
        port=8000,
        target_group_arn="tg",
        rule_arn="rule",
    )
    routed_live = lifecycle.went_live(
        routed, task_event("RUNNING"), url=routed.url, url_note="", now=NOW + 45, routed_target="10.0.0.7:8000"
    )
    routed_stopped = lifecycle.stopped(routed_live, task_event("STOPPED", exit_code=124), NOW + 3000)
    cases.update(
        {
            "address mode: claim": routed_claim,
            "address mode: went live": routed_live,
            "address mode: replacing keeps the route": lifecycle.claim_launch(
                routed_live, MR, lifecycle.Launch(spec(), SHA2), NOW + 60, host=host
            ),
            "address mode: relaunch after a stop looks again": lifecycle.claim_launch(
                routed_stopped, MR, lifecycle.Launch(spec(), SHA2), NOW + 4000, host=host
            ),
        }
    )
    check("transitions", cases)


# --------------------------------------------------------------------------- routing and planning


def mr_event(action: str, **changes: Any) -> MergeRequestEvent:
    base = MergeRequestEvent(
        mr=MR,
        action=action,
        state="opened",
        head_sha=SHA,
        pushed=False,
        draft=False,
        labels=("review-app",),
        updated_at=NOW,
    )
    return dataclasses.replace(base, **changes)


EVENTS = {
    "open": mr_event("open"),
    "reopen": mr_event("reopen"),
    "push": mr_event("update", pushed=True),
    "label added": mr_event("update", labels_added=("review-app",)),
    "label removed": mr_event("update", labels_removed=("review-app",)),
    "marked ready": mr_event("update", became_ready=True),
    "title edit": mr_event("update"),
    "merge": mr_event("merge", state="merged"),
    "close": mr_event("close", state="closed"),
    "approved": mr_event("approved"),
    "pipeline success": PipelineEvent(mr=MR, status="success", sha=SHA, source="merge_request_event", pipeline_id=1),
    "pipeline running": PipelineEvent(mr=MR, status="running", sha=SHA, source="merge_request_event", pipeline_id=1),
    "branch pipeline": PipelineEvent(mr=None, status="success", sha=SHA, source="push", pipeline_id=1),
    "command": NoteEvent(
        mr=MR,
        noteable_type="MergeRequest",
        system=False,
        text="/review-app extend 1h\nthanks",
        author_id=5,
        author="alice",
    ),
    "bare command": NoteEvent(mr=MR, noteable_type="MergeRequest", system=False, text=" /review-app ", author_id=5),
    "not a command": NoteEvent(mr=MR, noteable_type="MergeRequest", system=False, text="/review-apps", author_id=5),
    "system note": NoteEvent(mr=MR, noteable_type="MergeRequest", system=True, text="/review-app", author_id=5),
    "issue comment": NoteEvent(mr=None, noteable_type="Issue", system=False, text="/review-app", author_id=5),
    "push hook": OtherEvent("push"),
}


def ask(cause: Cause, **changes: Any) -> lifecycle.ConsiderDeploy:
    return dataclasses.replace(lifecycle.ConsiderDeploy(MR, SHA, cause, updated_at=NOW), **changes)


PLANS = {
    "open, merge_request trigger": (ask(Cause.OPENED), spec(trigger="merge_request"), None, "opened"),
    "open, pipeline trigger": (ask(Cause.OPENED), spec(), None, "opened"),
    "pipeline, pipeline trigger": (ask(Cause.PIPELINE), spec(), None, "opened"),
    "pipeline, merge_request trigger": (ask(Cause.PIPELINE), spec(trigger="merge_request"), None, "opened"),
    "closed mr": (ask(Cause.PIPELINE), spec(), None, "closed"),
    "queue, merged": (ask(Cause.QUEUE), spec(), record(status=Status.QUEUED), "merged"),
    "queue, closed": (ask(Cause.QUEUE), spec(), record(status=Status.QUEUED), "closed"),
    "queue, no longer queued": (ask(Cause.QUEUE), spec(), record(), "opened"),
    "queue, spec gone": (ask(Cause.QUEUE), None, record(status=Status.QUEUED), "opened"),
    "queue, starts": (ask(Cause.QUEUE), spec(), record(status=Status.QUEUED), "opened"),
    "older event": (ask(Cause.PUSHED, updated_at=NOW - 1), spec(), record(mr_updated_at=NOW), "opened"),
    "not the head": (ask(Cause.PUSHED, sha=SHA2), spec(), None, "opened"),
    "no spec": (ask(Cause.OPENED), None, None, "opened"),
    "fork": (ask(Cause.OPENED, mr=dataclasses.replace(MR, source_project_id=99)), spec(), None, "opened"),
    "problems": (ask(Cause.PIPELINE), lifecycle.Reject(("x",)), None, "opened"),
    "problems already shown": (
        ask(Cause.PIPELINE),
        lifecycle.Reject(("x",)),
        record(status=Status.REJECTED, commit_sha=SHA),
        "opened",
    ),
    "label missing": (ask(Cause.PIPELINE), spec(label="review-app"), None, "opened"),
    "label removed while running": (
        ask(Cause.EDITED, labels_removed=("review-app",)),
        spec(label="review-app"),
        record(),
        "opened",
    ),
    "label added": (
        ask(Cause.EDITED, labels=("review-app",), labels_added=("review-app",)),
        spec(label="review-app"),
        None,
        "opened",
    ),
    "other edit": (ask(Cause.EDITED, labels=("x",), labels_added=("x",)), spec(), None, "opened"),
    "marked ready": (ask(Cause.EDITED, became_ready=True), spec(), None, "opened"),
    "draft": (ask(Cause.PIPELINE, draft=True), spec(), None, "opened"),
    "draft allowed": (ask(Cause.PIPELINE, draft=True), spec(drafts=True), None, "opened"),
    "draft, command": (ask(Cause.COMMAND, draft=True), spec(label="x"), None, "opened"),
    "already deployed": (ask(Cause.PIPELINE), spec(), record(), "opened"),
    "already deployed, command": (ask(Cause.COMMAND), spec(), record(), "opened"),
    "already queued": (ask(Cause.PIPELINE), spec(), record(status=Status.QUEUED, queue_place=4), "opened"),
}


def test_every_routing_and_plan():
    cases: dict[str, Any] = {f"route: {n}": lifecycle.route_gitlab_event(e) for n, e in EVENTS.items()}
    for name, (the_ask, the_spec, the_record, state) in PLANS.items():
        if isinstance(the_spec, lifecycle.Reject):
            the_spec = Problems(the_spec.problems)
        cases[f"plan: {name}"] = lifecycle.plan_deploy(
            the_ask, the_spec, the_record, mr_state=state, mr_head_sha=SHA, allow_forks=False
        )
    cases["stop: nothing"] = lifecycle.plan_stop(None)
    cases["stop: older"] = lifecycle.plan_stop(record(mr_updated_at=NOW), NOW - 1)
    cases["stop: already stopping"] = lifecycle.plan_stop(record(status=Status.STOPPING))
    cases["stop: live"] = lifecycle.plan_stop(record(status=Status.LIVE), NOW)
    cases["stop: queued"] = lifecycle.plan_stop(record(status=Status.QUEUED))
    check("plans", cases)


# --------------------------------------------------------------------------- task events, commands, reconcile plans


def test_every_task_event_decision_and_stop_explanation():
    live = record(**LIVE)
    stopping = dataclasses.replace(live, status=Status.STOPPING, stop_reason=StopReason.CLOSED, stop_detail="@bob")
    events_ = {
        "running": task_event("RUNNING"),
        "pending": task_event("PENDING"),
        "old version": task_event("RUNNING", version=1),
        "other task": task_event("RUNNING", task_arn="arn:other", started_by="other"),
        "found by startedBy": task_event("RUNNING", task_arn="arn:new"),
        "ttl exit": task_event("STOPPED", exit_code=124),
        "killed after the deadline": task_event("STOPPED", exit_code=137),
        "crash": task_event("STOPPED", exit_code=3, stopped_reason="Essential container in task exited"),
        "crash, no reason": task_event("STOPPED", exit_code=3),
        "pull error": task_event("STOPPED", stopped_reason="CannotPullContainerError: nope", started=False),
        "failed to start": task_event("STOPPED", stop_code="TaskFailedToStart", started=False),
        "resource error": task_event("STOPPED", stopped_reason="ResourceInitializationError: x", started=False),
        "spot": task_event("STOPPED", stop_code="SpotInterruption", exit_code=143),
        "spot notice": task_event("STOPPED", stop_code="TerminationNotice"),
        "user stop": task_event("STOPPED", stop_code="UserInitiated", exit_code=143, stopped_reason="by hand"),
        "user stop, no reason": task_event("STOPPED", stop_code="UserInitiated", exit_code=143),
        "schedule": task_event(
            "STOPPED", stop_code="UserInitiated", exit_code=143, stopped_reason=lifecycle.DEADLINE_STOP_REASON
        ),
        "unknown": task_event("STOPPED"),
        "unknown with reason": task_event("STOPPED", stopped_reason="Host EC2 terminated"),
    }
    records = {
        "deploying": record(),
        "live": live,
        "stopping": stopping,
        "stopped": record(status=Status.STOPPED),
        "none": None,
    }
    cases: dict[str, Any] = {}
    for event_name, event in events_.items():
        for record_name, rec in records.items():
            decision = lifecycle.on_task_event(event, rec)
            cases[f"{event_name} / {record_name}"] = {"decision": decision}
            if isinstance(decision, lifecycle.Stopped) and rec is not None:
                cases[f"{event_name} / {record_name}"]["explained"] = lifecycle.explain_stop(event, rec, NOW + 1900)
    cases["killed before the deadline"] = lifecycle.explain_stop(task_event("STOPPED", exit_code=137), live, NOW)
    cases["urls"] = [
        lifecycle.app_url(private, public, 8000, want)
        for private in ("10.0.0.7", None)
        for public in ("3.3.3.3", None)
        for want in (True, False)
    ]
    check("task_events", cases)


def command(verb: str, argument: str = "", author: str = "alice") -> lifecycle.Command:
    return lifecycle.Command(MR, verb, argument, 5, author)


def test_every_command_answer():
    live = record(**LIVE)
    cases: dict[str, Any] = {}
    for text in (
        "/review-app",
        "/review-app deploy",
        "/review-app STOP now",
        "/review-app extend 1h\nplease",
        "/review-appx",
        "hello /review-app",
        "",
        "  /review-app   status  ",
    ):
        cases[f"parse: {text!r}"] = lifecycle.parse_command(text)
    asks = {
        "deploy": command("deploy"),
        "stop": command("stop"),
        "help": command("help"),
        "unknown": command("dance"),
        "extend 1h": command("extend", "1h"),
        "extend nonsense": command("extend", "a bit"),
        "status": command("status"),
        "anonymous status": command("status", author=""),
    }
    states = {
        "none": None,
        "empty": record(status=Status.NONE),
        "live": live,
        "deploying": record(),
        "stopping": record(status=Status.STOPPING),
        "queued": record(status=Status.QUEUED, queue_place=2),
        "stopped": record(status=Status.STOPPED),
    }
    for ask_name, the_command in asks.items():
        for state_name, rec in states.items():
            cases[f"{ask_name} / {state_name} / developer"] = lifecycle.answer_command(the_command, 30, rec)
    cases["reporter"] = lifecycle.answer_command(command("deploy"), 20, live)
    cases["not a member"] = lifecycle.answer_command(command("stop", author=""), None, live)
    for state_name, rec in states.items():
        cases[f"extended / {state_name}"] = lifecycle.extended(rec, lifecycle.Extend(MR, 3600, "alice"), 4 * 3600)
    cases["extended, anonymous"] = lifecycle.extended(None, lifecycle.Extend(MR, 60, ""), 4 * 3600)
    cases["answer, no record"] = lifecycle.with_answer(None, MR, "hi")
    cases["answer, live"] = lifecycle.with_answer(live, MR, "hi")
    check("commands", cases)


def test_every_reconcile_plan():
    defs = "arn:aws:ecs:us-east-1:111122223333:task-definition/review-app_review-apps-test_14-{}:1"

    def task(iid: int, arn: str = TASK, started_by: str = "launch-1") -> plans.RunningTask:
        return plans.RunningTask(arn, f"review-app:14:{iid}", started_by, defs.format(iid))

    live = record(**LIVE)
    records = [
        live,
        record(mr_iid=4, status=Status.STOPPING, task_arn="arn:t4", launch_id="l4", deadline=NOW),
        record(mr_iid=5, status=Status.DEPLOYING, task_arn="", launch_id="l5", launched_at=NOW),
        record(mr_iid=6, status=Status.DEPLOYING, task_arn="", launch_id="l6", launched_at=NOW - 500),
        record(mr_iid=7, status=Status.LIVE, task_arn="arn:t7", launch_id="l7", deadline=NOW + 99),
        record(mr_iid=8, status=Status.STOPPED, task_arn="arn:t8"),
        record(mr_iid=9, status=Status.QUEUED, task_arn=""),
    ]
    tasks = [
        task(3),
        task(4, "arn:t4", "l4"),
        task(5, "arn:t5", "l5"),
        task(11, "arn:orphan", "x"),
        task(3, "arn:stray", "y"),
        plans.RunningTask("arn:g", "family:x", "", "td"),
    ]
    cases: dict[str, Any] = {}
    for label, now in (("before deadlines", NOW + 100), ("after deadlines", NOW + 5000)):
        plan = plans.plan(tasks, records, [defs.format(i) for i in (3, 4, 5, 6, 12)], now, "review-apps-test")
        cases[label] = {
            "stop": [(s.task.task_arn, s.reason, s.record.key if s.record else None) for s in plan.stop],
            "check": [r.key for r in plan.check],
            "republish": [r.key for r in plan.republish],
            "retire": plan.retire,
        }
    caps = lifecycle.Caps(overall=2, per_project=1)
    cases["slots"] = plans.slot_corrections(records, {"all": {"14/3", "14/8", "15/1"}, "project/14": {"14/3"}}, caps)
    check("reconcile", cases)


# --------------------------------------------------------------------------- addresses, sleep and wake


def test_every_address_sleep_and_wake_answer():
    tg = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/ra-abc123-14-{}/6d0ecf831eec9f09"

    def app(iid: int, **changes: Any):
        base = dict(
            mr_iid=iid,
            status=Status.LIVE,
            host=f"shop-mr{iid}-p14.review.example.com",
            target_group_arn=tg.format(iid),
            rule_arn=f"rule-{iid}",
            sleep_after=900,
            live_at=NOW - 1800,
            launched_at=NOW - 1850,
            start_seconds=50,
            queue_place=2,
        )
        return record(**{**base, **changes})

    apps = [
        app(1),
        app(2, sleep_after=3600, live_at=NOW - 7200),
        app(3, live_at=NOW - 60),
        app(4, sleep_after=0),
        app(5, status=Status.DEPLOYING),
        app(6, host=""),
        app(7, target_group_arn=""),
    ]
    queries = sleep.metric_queries(sleep.candidates(apps, NOW))
    points = {"q0": [(NOW - 900, 1.0)], "q1": [(NOW - 3600, 0.0), (NOW - 3601, 9.0)]}
    routes = [
        addresses.Route((14, 1), tg.format(1), ("rule-0", "rule-1", "rule-x")),
        addresses.Route((14, 2), tg.format(2), ("rule-2", "rule-y")),
        addresses.Route((14, 8), tg.format(8), ("rule-8",)),
        addresses.Route((14, 9), tg.format(9), ()),
        addresses.Route((14, 11), "", ("rule-11",)),
    ]
    route_records = [
        app(1, healthy_at=NOW - 100, routed_target="10.0.0.7:8000"),
        app(2),
        app(9, status=Status.STOPPED, stopped_at=NOW - 10),
        app(10, status=Status.LIVE, rule_arn="", target_group_arn="", launched_at=NOW - 600),
        app(11, status=Status.ASLEEP),
        app(12, status=Status.QUEUED),
    ]
    statuses = [
        Status.DEPLOYING,
        Status.LIVE,
        Status.STOPPING,
        Status.QUEUED,
        Status.ASLEEP,
        Status.STOPPED,
        Status.FAILED,
        Status.REJECTED,
        Status.NONE,
    ]
    answers = [
        sleep.WakeAnswer(kind, 42, place=3, start_seconds=start)
        for kind in ("waking", "starting", "queued", "awake", "failed", "missing", "retry")
        for start in (0, 95)
    ]
    hosts = [
        "shop-mr42-p14.review.example.com",
        "Shop-MR42-p14.REVIEW.example.com:8443",
        "a:b:c",
        "mr1-p2.review.example.com",
        "x-mr1-p2.other.example.com",
        "-mr1-p2.review.example.com.",
        "shop-mr0042-p014.review.example.com",
    ]
    cases = {
        "hosts": {
            path: addresses.hostname(path, 14, 42, "review.example.com")
            for path in ("g/shop", "g/sub/Shop_Web.v2", "g/---", "g/" + "long-name" * 9, "g/ÄÖÜ-x")
        },
        "parsed hosts": {host: addresses.parse_host(host, "review.example.com") for host in hosts},
        "target groups": [addresses.target_group_name("review-apps", 14, n) for n in (1, 22)],
        "first priorities": [next(addresses.priorities("review-apps", 14, n)) for n in (1, 2, 3)],
        "listener full": [
            addresses.listener_full_problem("it has 100 target groups"),
            addresses.listener_full_problem("x", "so the app runs but its address has no route"),
        ],
        "route plan": addresses.plan_routes(routes, route_records, NOW),
        "sleep candidates": [r.mr_iid for r in sleep.candidates(apps, NOW)],
        "metric queries": [(q.query_id, q.target_group, q.record.mr_iid) for q in queries],
        "window start": sleep.window_start([q.record for q in queries], NOW),
        "idle": [r.mr_iid for r in sleep.idle(queries, points, NOW)],
        "falling asleep": sleep.falling_asleep(app(1, history=["a", "b", "c", "d", "e", "f"]), NOW),
        "after ttl": sleep.after_ttl(
            lifecycle.stopped(app(1, container="web"), task_event("STOPPED", exit_code=124), NOW)
        ),
        "ended asleep": sleep.ended_asleep(
            app(1, status=Status.ASLEEP, stopped_at=NOW - 99), StopReason.CLOSED, "@bob", NOW, NOW + 1
        ),
        "woke": sleep.woke(app(1, status=Status.DEPLOYING, asleep_since=NOW - 5), NOW),
        "what a visit finds": {str(st): sleep.answer_for(app(1, status=st)) for st in statuses},
        "what a visit finds, live and found healthy": sleep.answer_for(
            app(1, healthy_at=NOW - 5, routed_target="10.0.0.7:8000")
        ),
        "what a visit finds, falling asleep": sleep.answer_for(
            app(1, status=Status.STOPPING, stop_reason=StopReason.ASLEEP)
        ),
        "pages": {f"{a.kind} {a.start_seconds}": pages.render(a) for a in answers},
    }
    check("addresses_and_sleep", cases)

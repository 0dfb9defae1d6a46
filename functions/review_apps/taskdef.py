"""Derive the review app's task definition from the one the app already runs with.

The derived revision lives in its own family (`review-app-<project>-<iid>`) so registering
it never moves the "latest" revision of the team's real family under their services.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from review_apps import sizes
from review_apps.spec import Spec, fill_placeholders

# Fields of DescribeTaskDefinition's answer that RegisterTaskDefinition accepts back.
_REGISTERABLE = (
    "taskRoleArn",
    "executionRoleArn",
    "networkMode",
    "volumes",
    "placementConstraints",
    "requiresCompatibilities",
    "cpu",
    "memory",
    "pidMode",
    "ipcMode",
    "proxyConfiguration",
    "inferenceAccelerators",
    "ephemeralStorage",
    "runtimePlatform",
)
KILL_AFTER_SECONDS = 30


@dataclass(frozen=True)
class DerivedTaskDefinition:
    register_kwargs: dict[str, Any]
    container: str
    port: int
    cpu: int
    memory: int
    architecture: str  # "x86_64" or "arm64"


@dataclass(frozen=True)
class TaskDefinitionProblems:
    problems: tuple[str, ...]


def review_family(project_id: int, mr_iid: int) -> str:
    return f"review-app-{project_id}-{mr_iid}"


def derive(
    base: dict[str, Any],
    spec: Spec,
    *,
    project_id: int,
    mr_iid: int,
    placeholders: dict[str, str],
    allowed_role_arns: tuple[str, ...] = (),
    max_ttl: int = 0,
) -> DerivedTaskDefinition | TaskDefinitionProblems:
    """`base` is DescribeTaskDefinition's `taskDefinition`; nothing here calls AWS. `max_ttl` is
    the install's longest time to live, which the container's own timer enforces."""
    problems: list[str] = []
    name = base.get("family", spec.task_definition)
    containers = copy.deepcopy(base.get("containerDefinitions") or [])
    names = [c.get("name") for c in containers]

    if base.get("networkMode") != "awsvpc":
        problems.append(
            f"Task definition `{name}` uses network mode `{base.get('networkMode') or 'bridge'}`; "
            "Fargate needs `awsvpc`. Register a revision with `networkMode: awsvpc`."
        )
    if "FARGATE" not in (base.get("requiresCompatibilities") or []) and "FARGATE" not in (
        base.get("compatibilities") or []
    ):
        problems.append(
            f"Task definition `{name}` is not compatible with Fargate; add `FARGATE` to "
            "`requiresCompatibilities` and set task-level `cpu` and `memory`."
        )
    for role_field in ("taskRoleArn", "executionRoleArn"):
        role = base.get(role_field)
        if role and allowed_role_arns and role not in allowed_role_arns:
            problems.append(
                f"Task definition `{name}` uses {role_field} `{role}`, which this install does not allow "
                "review apps to use. Ask your platform team to add it to the allowed roles, or use an "
                "allowed role."
            )

    if spec.container:
        target = next((c for c in containers if c.get("name") == spec.container), None)
        if target is None:
            problems.append(
                f"`container: {spec.container}` is not in task definition `{name}`; "
                f"its containers are {', '.join(f'`{n}`' for n in names)}."
            )
    elif len(containers) == 1:
        target = containers[0]
    elif len(serving := [c for c in containers if c.get("portMappings")]) == 1:
        target = serving[0]  # the only container that publishes a port
    else:
        target = None
        problems.append(
            f"Task definition `{name}` has {len(containers)} containers "
            f"({', '.join(f'`{n}`' for n in names)}); say which one serves the app with `container:`."
        )

    port = spec.port
    if target is not None and target.get("essential", True) is False:
        problems.append(
            f"Container `{target['name']}` serves the app but is not essential: when its TTL ends it, ECS keeps the "
            "task (and its bill) running, because a task stops only when an essential container exits. Mark it "
            f"essential (in ecs-params.yml: `task_definition.services.{target['name']}.essential: true`)."
        )
    if target is not None:
        if port is None:
            mappings = target.get("portMappings") or []
            port = mappings[0].get("containerPort") if mappings else None
            if not port:
                problems.append(
                    f"Container `{target['name']}` publishes no port; say which port serves the app with `port:`."
                )
        command = list(spec.command) if spec.command else list(target.get("command") or [])
        entry_point = list(target.get("entryPoint") or [])
        if not entry_point and not command:
            problems.append(
                f"Container `{target['name']}` has no `entryPoint` or `command` in the task definition, so "
                "the command to wrap in the TTL timeout is unknown (it is only in the image). Add "
                "`command:` to the spec with what the image runs, e.g. `command: [\"npm\", \"start\"]`."
            )
        if spec.image:
            target["image"] = fill_placeholders(spec.image, placeholders)
        # Two clocks end an app. The reconciler stops it at its deadline (the spec's TTL plus any
        # `/review-app extend`), which can move while it runs. `timeout` is the backstop that
        # needs nothing of ours: set to the install's maximum TTL, the furthest any deadline can
        # go, it ends the app (exit 124) even if no function here ever runs again; -k kills an
        # app that ignores SIGTERM.
        limit = max(max_ttl, spec.ttl_seconds)
        target["entryPoint"] = ["timeout", "-k", str(KILL_AFTER_SECONDS), str(limit)]
        target["command"] = entry_point + command

    cpu = spec.cpu or sizes.cpu_units(base.get("cpu") or "256") or 256
    memory = spec.memory or sizes.memory_mib(base.get("memory") or "512") or 512
    size_problem = sizes.fargate_problem(cpu, memory)
    if size_problem:
        problems.append(size_problem + " Set `cpu:` and `memory:` in the spec.")
    platform = base.get("runtimePlatform") or {}
    base_architecture = "arm64" if platform.get("cpuArchitecture") == "ARM64" else "x86_64"
    architecture = spec.architecture or base_architecture

    if problems:
        return TaskDefinitionProblems(tuple(problems))

    kwargs: dict[str, Any] = {k: copy.deepcopy(base[k]) for k in _REGISTERABLE if base.get(k)}
    kwargs["cpu"], kwargs["memory"] = str(cpu), str(memory)
    kwargs["runtimePlatform"] = {
        **platform,
        "cpuArchitecture": "ARM64" if architecture == "arm64" else "X86_64",
        "operatingSystemFamily": platform.get("operatingSystemFamily", "LINUX"),
    }
    kwargs["family"] = review_family(project_id, mr_iid)
    kwargs["containerDefinitions"] = containers
    kwargs["requiresCompatibilities"] = ["FARGATE"]
    kwargs["tags"] = [
        {"key": "review-app:project", "value": str(project_id)},
        {"key": "review-app:mr", "value": str(mr_iid)},
        {"key": "review-app:base", "value": name},
    ]
    return DerivedTaskDefinition(
        register_kwargs=kwargs, container=target["name"], port=int(port), cpu=cpu, memory=memory,
        architecture=architecture,
    )

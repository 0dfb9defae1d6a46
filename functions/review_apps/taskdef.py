"""Derive the review app's task definition from the one the app already runs with.

The derived revision lives in its own family (`review-app-<project>-<iid>`) so registering
it never moves the "latest" revision of the team's real family under their services.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from review_apps import app_env, ownership, sizes
from review_apps import limits as install_limits
from review_apps.limits import Limits
from review_apps.problems import Problems
from review_apps.spec import Spec
from review_apps.untrusted import code, plain

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
# The tag on a base task definition revision that says which projects may build review apps
# from it: project paths, numeric ids, or group prefixes ending in `/`, separated by spaces.
PROJECTS_TAG = ownership.PROJECTS_TAG
INSTALL_TAG = "review-apps:install"
# Images known to have no `timeout` binary: wrapping their command would crash them.
NO_TIMEOUT_IMAGES = ("gcr.io/distroless/", "cgr.dev/chainguard/", "docker.io/library/scratch")


@dataclass(frozen=True)
class DerivedTaskDefinition:
    register_kwargs: dict[str, Any]
    container: str
    port: int
    cpu: int
    memory: int
    architecture: str  # "x86_64" or "arm64"
    # Whether the app's command runs inside `timeout` (the in-container deadline), and if not, why.
    wrapped: bool = False
    unwrapped_because: str = ""
    # The awslogs groups its containers log to, each under the project's own prefix.
    log_groups: tuple[str, ...] = ()


def family_prefix(install: str) -> str:
    """Every family this install registers starts so. Stack names have no `_`, so one
    install's prefix is never the start of another's (`shop_` vs `shop-2_`)."""
    return f"review-app_{install}_"


def review_family(install: str, project_id: int, mr_iid: int) -> str:
    return f"{family_prefix(install)}{project_id}-{mr_iid}"


def owned_by(tags: list[dict[str, str]], project_id: int, project_path: str) -> bool:
    """Whether a base revision's `review-apps:projects` tag lists this project."""
    listed = next((t.get("value") for t in tags if t.get("key") == PROJECTS_TAG), None)
    return ownership.names_project(listed, project_id, project_path)


def not_usable(name: str) -> str:
    """One answer for a definition that is missing, untagged or another project's: it tells
    a stranger nothing about what exists in the account."""
    return (
        f"Task definition {code(name)} cannot be used by this project: either it does not exist here, or its "
        f"revision is not tagged `{PROJECTS_TAG}` with this project's path or id. Ask its owners to tag it "
        '(README, Security: "Tagging a base task definition").'
    )


def refused_by_ecs(reason: str) -> str:
    """ECS's own words are about the project's files (container names, sizes): shown as inert code."""
    return (
        f"ECS refused this review app's task definition: `{plain(reason, 300)}`. Fix what it names in the task "
        "definition, the compose or ecs-params file, or the spec's `cpu:` and `memory:`, and push again."
    )


def _known_without_timeout(image: str) -> bool:
    ref = ownership.parse_image(image)
    return ref is not None and any(f"{ref.host}/{ref.path}".startswith(prefix) for prefix in NO_TIMEOUT_IMAGES)


def derive(
    base: dict[str, Any],
    spec: Spec,
    *,
    project_id: int,
    mr_iid: int,
    placeholders: dict[str, str],
    limits: Limits,
    install: str,
    max_ttl: int = 0,
    told: dict[str, str] | None = None,
) -> DerivedTaskDefinition | Problems:
    """`base` is DescribeTaskDefinition's `taskDefinition`; nothing here calls AWS. `max_ttl` is
    the install's longest time to live, which the container's own timer enforces. `told`: the
    install's variables (app_env.variables) for every container; `placeholders`: what the spec's
    `${…}` stand for."""
    problems: list[str] = []
    name = plain(base.get("family", spec.task_definition))
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
    for role_field in (install_limits.TASK_ROLE, install_limits.EXECUTION_ROLE):
        role = base.get(role_field)
        problem = install_limits.role_problem(limits, role_field, role, f"Task definition `{name}`") if role else None
        if problem:
            problems.append(problem)

    if spec.container:
        target = next((c for c in containers if c.get("name") == spec.container), None)
        if target is None:
            problems.append(
                f"`container:` {code(spec.container)} is not in task definition `{name}`; "
                f"its containers are {', '.join(code(n) for n in names)}."
            )
    elif len(containers) == 1:
        target = containers[0]
    elif len(serving := [c for c in containers if c.get("portMappings")]) == 1:
        target = serving[0]  # the only container that publishes a port
    else:
        target = None
        problems.append(
            f"Task definition `{name}` has {len(containers)} containers "
            f"({', '.join(code(n) for n in names)}); say which one serves the app with `container:`."
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
        if spec.image and (missing := app_env.unfilled(spec.image, placeholders)):
            problems.append("`image`: " + app_env.address_only(missing[0]))
        elif spec.image:
            target["image"] = app_env.fill(spec.image, placeholders)
        wrapped, unwrapped_because = _wrap_decision(spec, entry_point, command, str(target.get("image") or ""))
        if wrapped is None:
            problems.append(
                f"Container `{target['name']}` has no `entryPoint` or `command` in the task definition, so "
                "the command to wrap in `timeout` is unknown (it is only in the image). Add "
                '`command:` to the spec with what the image runs, e.g. `command: ["npm", "start"]`, or '
                "drop `wrap_in_timeout: true`."
            )
        elif wrapped:
            # The deadline's schedule stops the task from outside; `timeout`, set to the install's
            # maximum TTL (the furthest any deadline can move), ends it even if that schedule and
            # every function here fail; -k kills an app that ignores SIGTERM.
            limit = max(max_ttl, spec.ttl_seconds)
            target["entryPoint"] = ["timeout", "-k", str(KILL_AFTER_SECONDS), str(limit)]
            target["command"] = entry_point + command
        elif spec.command:
            target["command"] = command

    cpu = spec.cpu or sizes.cpu_units(base.get("cpu") or "256") or 256
    memory = spec.memory or sizes.memory_mib(base.get("memory") or "512") or 512
    size_problem = sizes.fargate_problem(cpu, memory)
    if size_problem:
        problems.append(size_problem + " Set `cpu:` and `memory:` in the spec.")
    else:
        size_problem = install_limits.size_problem(limits, cpu, memory)
        if size_problem:
            problems.append(size_problem)
    log_groups: list[str] = []
    for container in containers:
        image_problem = install_limits.image_problem(container.get("image"), str(container.get("name")))
        if image_problem:
            problems.append(image_problem)
        options = (container.get("logConfiguration") or {}).get("options")
        if isinstance(options, dict) and isinstance(options.get("awslogs-group"), str):
            # Whatever the files say, a project logs only into its own groups.
            options["awslogs-group"] = ownership.project_log_group(
                limits.log_group_prefix, project_id, options["awslogs-group"]
            )
            log_groups.append(options["awslogs-group"])
    env = []
    for name, value in spec.env:
        if missing := app_env.unfilled(value, placeholders):
            problems.append(f"`env.{name}`: " + app_env.address_only(missing[0]))
        else:
            env.append((name, app_env.fill(value, placeholders)))
    # A compose app's settings go to every container (its services are one app); otherwise to the
    # container that serves it. The install's variables go to every container, and win.
    for container in containers:
        settled = spec.compose or container is target
        _tell(container, told or {}, tuple(env) if settled else (), spec.secrets if settled else ())
    if any(c.get("secrets") for c in containers) and not base.get("executionRoleArn"):
        problems.append(
            "The app has `secrets`, which ECS fetches at start with the task execution role, and the task "
            "definition has none: set `executionRoleArn` in it (or `task_execution_role` in ecs-params.yml) to a "
            "role this project may use (README, Settings and secrets)."
        )
    platform = base.get("runtimePlatform") or {}
    base_architecture = "arm64" if platform.get("cpuArchitecture") == "ARM64" else "x86_64"
    architecture = spec.architecture or base_architecture

    if problems or target is None or port is None:
        return Problems(tuple(problems))

    kwargs: dict[str, Any] = {k: copy.deepcopy(base[k]) for k in _REGISTERABLE if base.get(k)}
    kwargs["cpu"], kwargs["memory"] = str(cpu), str(memory)
    kwargs["runtimePlatform"] = {
        **platform,
        "cpuArchitecture": "ARM64" if architecture == "arm64" else "X86_64",
        "operatingSystemFamily": platform.get("operatingSystemFamily", "LINUX"),
    }
    kwargs["family"] = review_family(install, project_id, mr_iid)
    kwargs["containerDefinitions"] = containers
    kwargs["requiresCompatibilities"] = ["FARGATE"]
    kwargs["tags"] = [
        {"key": INSTALL_TAG, "value": install},
        {"key": "review-app:project", "value": str(project_id)},
        {"key": "review-app:mr", "value": str(mr_iid)},
        {"key": "review-app:base", "value": name[:256]},
    ]
    return DerivedTaskDefinition(
        register_kwargs=kwargs,
        container=target["name"],
        port=int(port),
        cpu=cpu,
        memory=memory,
        architecture=architecture,
        wrapped=bool(wrapped),
        unwrapped_because=unwrapped_because,
        log_groups=tuple(dict.fromkeys(log_groups)),
    )


def _tell(
    container: dict[str, Any],
    told: dict[str, str],
    env: tuple[tuple[str, str], ...],
    secrets: tuple[tuple[str, str], ...],
) -> None:
    """The container's `environment` and `secrets` with the spec's and the install's added: what
    they name replaces the same names from the base definition or compose file (one source each)."""
    names = set(told) | {name for name, _ in env} | {name for name, _ in secrets}
    environment = [e for e in container.get("environment") or [] if e.get("name") not in names]
    environment += [{"name": name, "value": value} for name, value in env]
    environment += [{"name": name, "value": told[name]} for name in sorted(told)]
    kept = [s for s in container.get("secrets") or [] if s.get("name") not in names]
    kept += [{"name": name, "valueFrom": reference} for name, reference in secrets]
    for key, values in (("environment", environment), ("secrets", kept)):
        if values:
            container[key] = values
        else:
            container.pop(key, None)


def _wrap_decision(spec: Spec, entry_point: list[str], command: list[str], image: str) -> tuple[bool | None, str]:
    """(wrap in `timeout`?, why not). None: asked for, but there is nothing known to wrap.

    Wrapping replaces the container's entrypoint, so it is safe only when the task definition
    names the entrypoint (then the image's own is not in use anyway) and the image has a
    `timeout` binary. Otherwise the deadline's schedule alone stops the app."""
    if spec.wrap_in_timeout is True:
        return (True, "") if entry_point or command else (None, "")
    if spec.wrap_in_timeout is False:
        return False, "the spec says `wrap_in_timeout: false`"
    if not entry_point:
        return False, "its entrypoint is in the image only, and wrapping would replace it"
    if _known_without_timeout(image):
        return False, "its image is known to have no `timeout`"
    return True, ""

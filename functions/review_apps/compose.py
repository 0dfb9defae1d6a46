"""docker-compose.yml (+ ecs-params.yml) → the task definition the review app runs, the way
`ecs-cli compose` built one.

The result is a "base" task definition in DescribeTaskDefinition's shape, so it goes through
the same `taskdef.derive` as a registered one (TTL wrapper, port, placeholders). Nothing in a
compose file is dropped silently: a key that would change how the app behaves refuses the
launch with what to do instead; a key that makes no difference on Fargate is listed on the MR.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from typing import Any

import yaml

from review_apps import sizes
from review_apps.durations import DurationError, parse_duration
from review_apps.spec import PLACEHOLDERS

# Keys that would make the review app behave differently from compose: refuse, say why.
REFUSED = {
    "build": "`build:` needs an `image:` too: review apps run images, they do not build them. Push the image "
    "from CI and name it with `image:`.",
    "privileged": "`privileged` is not available on Fargate; remove it.",
    "network_mode": "`network_mode` cannot be chosen on Fargate (every task uses `awsvpc`, and containers reach "
    "each other on localhost); remove it.",
    "pid": "`pid` is not available on Fargate; remove it.",
    "ipc": "`ipc` is not available on Fargate; remove it.",
    "devices": "`devices` is not available on Fargate; remove it.",
    "cap_add": "`cap_add` is not available on Fargate (beyond SYS_PTRACE); remove it.",
    "security_opt": "`security_opt` is not available on Fargate; remove it.",
    "sysctls": "`sysctls` are not supported for review apps; remove them.",
    "tmpfs": "`tmpfs` mounts are not available on Fargate; use a named volume.",
    "extra_hosts": "`extra_hosts` is not available with `awsvpc` networking; use real DNS names.",
    "dns": "`dns` is not available on Fargate; the VPC's resolver is used.",
    "env_file": "`env_file` cannot be read by review apps (the file is not in the image); list the variables "
    "under `environment:` instead.",
    "ulimits": "`ulimits` are not supported for review apps yet; remove them.",
    "volumes_from": "`volumes_from` is not supported; share a named volume instead.",
}
# Keys that make no difference on Fargate: listed on the MR, the app still launches.
IGNORED = {
    "container_name": "`container_name` is ignored: ECS names containers after their service.",
    "links": "`links` is ignored: containers of one task reach each other on localhost.",
    "networks": "`networks` is ignored: all containers of one task share one network.",
    "expose": "`expose` is ignored: every port is reachable inside the task.",
    "restart": "`restart` is ignored: a review app is a task, and it ends when an essential container exits.",
    "hostname": "`hostname` is ignored: Fargate does not set container host names.",
    "deploy": "`deploy` (apart from memory limits) is ignored: it configures Swarm.",
    "stop_grace_period": "`stop_grace_period` is ignored: ECS waits 30 seconds.",
}
SUPPORTED = {
    "image", "command", "entrypoint", "environment", "ports", "mem_limit", "mem_reservation", "cpu_shares",
    "working_dir", "user", "healthcheck", "depends_on", "logging", "volumes", "labels", "stdin_open", "tty",
}
DEPENDS_CONDITIONS = {
    "service_started": "START",
    "service_healthy": "HEALTHY",
    "service_completed_successfully": "SUCCESS",
}
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}|\$\$")
_MEMORY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([bkmg]?)b?\s*$", re.IGNORECASE)


@dataclass
class Translation:
    task_definition: dict[str, Any]
    notices: list[str] = field(default_factory=list)  # shown on the MR, launch goes on


@dataclass(frozen=True)
class ComposeProblems:
    problems: tuple[str, ...]
    notices: tuple[str, ...] = ()


class _Collector:
    def __init__(self) -> None:
        self.problems: list[str] = []
        self.notices: list[str] = []


def _interpolate(node: Any, values: dict[str, str], out: _Collector, where: str) -> Any:
    """Compose's `${VAR}` / `${VAR:-default}` / `$$`, with GitLab CI's names as the only variables."""
    if isinstance(node, dict):
        return {k: _interpolate(v, values, out, f"{where}.{k}") for k, v in node.items()}
    if isinstance(node, list):
        return [_interpolate(v, values, out, where) for v in node]
    if not isinstance(node, str):
        return node

    def replace(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        name, default = match.group(1), match.group(2)
        if name in values:
            return values[name]
        if default is not None:
            return default
        out.problems.append(
            f"`{where}` uses `${{{name}}}`, which review apps cannot fill in; use one of "
            + ", ".join(f"`${{{p}}}`" for p in PLACEHOLDERS)
            + " or give a default (`${NAME:-value}`)."
        )
        return match.group(0)

    return _VARIABLE.sub(replace, node)


def memory_mib(value: Any) -> int | None:
    """Compose memory (bytes as a number, or `512m`, `1g`, `1GB`) → MiB; None if unreadable."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return max(value // (1024 * 1024), 1)
    match = _MEMORY.match(str(value))
    if not match:
        return None
    number, unit = float(match.group(1)), match.group(2).lower()
    factor = {"": 1 / (1024 * 1024), "b": 1 / (1024 * 1024), "k": 1 / 1024, "m": 1, "g": 1024}[unit]
    return max(int(number * factor), 1)


def _command(value: Any, where: str, out: _Collector) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return shlex.split(value)
    if isinstance(value, list) and all(isinstance(v, (str, int, float)) for v in value):
        return [str(v) for v in value]
    out.problems.append(f"`{where}` must be a string or a list of strings.")
    return None


def _environment(value: Any, service: str, out: _Collector) -> list[dict[str, str]]:
    pairs: list[tuple[str, Any]] = []
    if isinstance(value, dict):
        pairs = list(value.items())
    elif isinstance(value, list):
        for entry in value:
            name, sep, rest = str(entry).partition("=")
            pairs.append((name, rest if sep else None))
    elif value is not None:
        out.problems.append(f"`services.{service}.environment` must be a list or a mapping.")
    result = []
    for name, raw in pairs:
        if raw is None:
            out.problems.append(
                f"`services.{service}.environment.{name}` has no value: compose would take it from the shell "
                "that runs it, which review apps do not have. Give it a value."
            )
            continue
        text = ("true" if raw else "false") if isinstance(raw, bool) else str(raw)
        result.append({"name": str(name), "value": text})
    return result


def _ports(value: Any, service: str, out: _Collector) -> list[dict[str, Any]]:
    mappings = []
    for entry in value or []:
        if isinstance(entry, dict):
            target, protocol = entry.get("target"), entry.get("protocol", "tcp")
        else:
            text, _, protocol = str(entry).partition("/")
            target = text.rsplit(":", 1)[-1]
            protocol = protocol or "tcp"
        try:
            port = int(target)
        except (TypeError, ValueError):
            out.problems.append(f"`services.{service}.ports`: `{entry}` is not a port (ranges are not supported).")
            continue
        if not isinstance(entry, dict) and ":" in str(entry).partition("/")[0]:
            published = str(entry).partition("/")[0].split(":")[-2]
            if published and published != str(port):
                out.notices.append(
                    f"`services.{service}.ports`: `{entry}` publishes {published}, but on Fargate a port is "
                    f"reached on its own number: the app is on {port}."
                )
        mappings.append({"containerPort": port, "hostPort": port, "protocol": protocol})
    return mappings


def _seconds(value: Any, where: str, out: _Collector) -> int | None:
    if value is None:
        return None
    try:
        return parse_duration(value)
    except DurationError as exc:
        out.problems.append(f"`{where}`: {exc}.")
        return None


def _healthcheck(value: Any, service: str, out: _Collector) -> dict[str, Any] | None:
    if not isinstance(value, dict) or value.get("disable"):
        return None
    where = f"services.{service}.healthcheck"
    test = value.get("test")
    if isinstance(test, str):
        command = ["CMD-SHELL", test]
    elif isinstance(test, list) and test and test[0] in ("CMD", "CMD-SHELL"):
        command = [str(t) for t in test]
    elif isinstance(test, list) and test and test[0] == "NONE":
        return None
    else:
        out.problems.append(f"`{where}.test` must be a string or a list starting with CMD or CMD-SHELL.")
        return None
    check: dict[str, Any] = {"command": command}
    for compose_key, ecs_key in (("interval", "interval"), ("timeout", "timeout"), ("start_period", "startPeriod")):
        seconds = _seconds(value.get(compose_key), f"{where}.{compose_key}", out)
        if seconds is not None:
            check[ecs_key] = seconds
    if "retries" in value:
        check["retries"] = int(value["retries"])
    return check


def _depends_on(value: Any, service: str, services: dict, out: _Collector) -> list[dict[str, str]]:
    entries = value.items() if isinstance(value, dict) else [(name, {}) for name in value or []]
    result = []
    for name, options in entries:
        if name not in services:
            out.problems.append(f"`services.{service}.depends_on` names `{name}`, which is not a service.")
            continue
        condition = (options or {}).get("condition", "service_started")
        if condition not in DEPENDS_CONDITIONS:
            out.problems.append(f"`services.{service}.depends_on.{name}.condition: {condition}` is not supported.")
            continue
        result.append({"containerName": name, "condition": DEPENDS_CONDITIONS[condition]})
    return result


def _logging(value: Any, service: str, out: _Collector) -> dict[str, Any] | None:
    if not value:
        return None
    driver = value.get("driver")
    if driver != "awslogs":
        out.problems.append(
            f"`services.{service}.logging.driver: {driver}` is not available; use `awslogs` (with "
            "`awslogs-group`, `awslogs-region` and `awslogs-stream-prefix` options)."
        )
        return None
    return {"logDriver": "awslogs", "options": {str(k): str(v) for k, v in (value.get("options") or {}).items()}}


def _volumes(value: Any, service: str, named: set[str], out: _Collector) -> list[dict[str, Any]]:
    mounts = []
    for entry in value or []:
        if isinstance(entry, dict):
            kind, source, target = entry.get("type", "volume"), entry.get("source"), entry.get("target")
            read_only = bool(entry.get("read_only"))
        else:
            parts = str(entry).split(":")
            source, target = (parts[0], parts[1]) if len(parts) > 1 else (None, parts[0])
            read_only = len(parts) > 2 and "ro" in parts[2].split(",")
            kind = "bind" if source and (source.startswith((".", "/", "~"))) else "volume"
        if kind != "volume" or not source:
            out.problems.append(
                f"`services.{service}.volumes`: `{entry}` mounts a path from the host, which Fargate does not have; "
                "use a named volume (declared under the top-level `volumes:`)."
            )
            continue
        if source not in named:
            out.problems.append(
                f"`services.{service}.volumes`: volume `{source}` is not declared under the top-level `volumes:`."
            )
            continue
        mounts.append({"sourceVolume": source, "containerPath": target, "readOnly": read_only})
    return mounts


def _container(name: str, service: dict, services: dict, named: set[str], out: _Collector) -> dict[str, Any]:
    where = f"services.{name}"
    for key in service:
        if key.startswith("x-") or key in SUPPORTED:
            continue
        if key in REFUSED and not (key == "build" and "image" in service):
            out.problems.append(f"`{where}.{key}`: {REFUSED[key]}")
        elif key in IGNORED or key == "build":
            out.notices.append(f"`{where}.{key}`: " + IGNORED.get(key, "`build` is ignored: `image` is used."))
        else:
            out.problems.append(f"`{where}.{key}` is not supported by review apps; remove it.")
    image = service.get("image")
    if not isinstance(image, str) or not image:
        if "build" not in service:
            out.problems.append(f"`{where}` has no `image`.")
        image = ""
    container: dict[str, Any] = {"name": name, "image": image, "essential": True}
    for key, ecs_key in (("command", "command"), ("entrypoint", "entryPoint")):
        command = _command(service.get(key), f"{where}.{key}", out)
        if command is not None:
            container[ecs_key] = command
    environment = _environment(service.get("environment"), name, out)
    if environment:
        container["environment"] = environment
    ports = _ports(service.get("ports"), name, out)
    if ports:
        container["portMappings"] = ports
    limits = ((service.get("deploy") or {}).get("resources") or {})
    for key, ecs_key, fallback in (("mem_limit", "memory", (limits.get("limits") or {}).get("memory")),
                                   ("mem_reservation", "memoryReservation",
                                    (limits.get("reservations") or {}).get("memory"))):
        raw = service.get(key, fallback)
        if raw is not None:
            mib = memory_mib(raw)
            if mib is None:
                out.problems.append(f"`{where}.{key}: {raw}` is not a memory size such as `512m` or `1g`.")
            else:
                container[ecs_key] = mib
    if "cpu_shares" in service:
        container["cpu"] = int(service["cpu_shares"])
    if "working_dir" in service:
        container["workingDirectory"] = str(service["working_dir"])
    if "user" in service:
        container["user"] = str(service["user"])
    if service.get("stdin_open"):
        container["interactive"] = True
    if service.get("tty"):
        container["pseudoTerminal"] = True
    labels = service.get("labels")
    if labels:
        pairs = labels.items() if isinstance(labels, dict) else (str(l).partition("=")[::2] for l in labels)
        container["dockerLabels"] = {str(k): str(v) for k, v in pairs}
    health = _healthcheck(service.get("healthcheck"), name, out)
    if health:
        container["healthCheck"] = health
    depends = _depends_on(service.get("depends_on"), name, services, out)
    if depends:
        container["dependsOn"] = depends
    log = _logging(service.get("logging"), name, out)
    if log:
        container["logConfiguration"] = log
    mounts = _volumes(service.get("volumes"), name, named, out)
    if mounts:
        container["mountPoints"] = mounts
    return container


def _load(text: str, name: str, out: _Collector) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        out.problems.append(f"`{name}` is not valid YAML{where}: {getattr(exc, 'problem', None) or exc}.")
        return None


def translate(
    compose_text: str,
    params_text: str | None,
    *,
    compose_path: str,
    params_path: str | None,
    placeholders: dict[str, str],
    allowed_role_arns: tuple[str, ...],
    family: str,
) -> Translation | ComposeProblems:
    out = _Collector()
    compose = _load(compose_text, compose_path, out)
    params = _load(params_text, params_path or "ecs-params.yml", out) if params_text is not None else {}
    if out.problems:
        return ComposeProblems(tuple(out.problems))
    if not isinstance(compose, dict) or not isinstance(compose.get("services"), dict) or not compose["services"]:
        hint = " (format 1, with services at the top level, is not supported)" if isinstance(compose, dict) else ""
        return ComposeProblems((f"`{compose_path}` has no `services:`{hint}.",))
    compose = _interpolate(compose, placeholders, out, "compose")
    named = set((compose.get("volumes") or {}).keys())
    services: dict = compose["services"]
    containers = [
        _container(name, service or {}, services, named, out) for name, service in services.items()
        if not str(name).startswith("x-")
    ]

    definition: dict[str, Any] = {
        "family": family,
        "networkMode": "awsvpc",
        "requiresCompatibilities": ["FARGATE"],
        "containerDefinitions": containers,
        "cpu": "256",
        "memory": "512",
    }
    used = {m["sourceVolume"] for c in containers for m in c.get("mountPoints", [])}
    if used:
        definition["volumes"] = [{"name": v} for v in sorted(used)]
    _apply_params(params, definition, containers, params_path or "ecs-params.yml", allowed_role_arns, out)
    if any("logConfiguration" in c for c in containers) and "executionRoleArn" not in definition:
        out.problems.append(
            "Containers log with `awslogs`, which needs a task execution role: set "
            "`task_definition.task_execution_role` in ecs-params.yml."
        )
    if out.problems:
        return ComposeProblems(tuple(out.problems), tuple(out.notices))
    return Translation(definition, out.notices)


def _apply_params(
    params: Any, definition: dict, containers: list[dict], where: str, allowed: tuple[str, ...], out: _Collector
) -> None:
    if not params:
        return
    if not isinstance(params, dict):
        out.problems.append(f"`{where}` must be a mapping with `version: 1`.")
        return
    if str(params.get("version")) != "1":
        out.problems.append(f"`{where}` must say `version: 1` (the ecs-cli format).")
    task = params.get("task_definition") or {}
    mode = task.get("ecs_network_mode", "awsvpc")
    if mode != "awsvpc":
        out.problems.append(f"`{where}`: `ecs_network_mode: {mode}` is not available on Fargate; use `awsvpc`.")
    for key, ecs_key in (("task_role_arn", "taskRoleArn"), ("task_execution_role", "executionRoleArn")):
        role = task.get(key)
        if not role:
            continue
        if allowed and role not in allowed:
            out.problems.append(
                f"`{where}`: `{key}: {role}` is not a role this install lets review apps use; ask your platform "
                "team to allow it, or use an allowed role."
            )
        definition[ecs_key] = role
    size = task.get("task_size") or {}
    if "cpu_limit" in size:
        cpu = sizes.cpu_units(size["cpu_limit"])
        if cpu is None:
            out.problems.append(f"`{where}`: `cpu_limit: {size['cpu_limit']}` is not CPU units (256) or `0.25 vCPU`.")
        else:
            definition["cpu"] = str(cpu)
    if "mem_limit" in size:
        memory = sizes.memory_mib(size["mem_limit"])
        if memory is None:
            out.problems.append(f"`{where}`: `mem_limit: {size['mem_limit']}` is not a size such as `1GB` or `512`.")
        else:
            definition["memory"] = str(memory)
    by_name = {c["name"]: c for c in containers}
    for name, options in (task.get("services") or {}).items():
        if name not in by_name:
            out.problems.append(f"`{where}`: `task_definition.services.{name}` is not a service of the compose file.")
            continue
        for key, value in (options or {}).items():
            if key == "essential":
                by_name[name]["essential"] = bool(value)
            else:
                out.notices.append(f"`{where}`: `task_definition.services.{name}.{key}` is ignored; set it in the "
                                   "compose file.")
    network = ((params.get("run_params") or {}).get("network_configuration") or {}).get("awsvpc_configuration")
    if network:
        out.notices.append(
            f"`{where}`: `run_params.network_configuration` is ignored: this install sets subnets, security groups "
            "and public IPs for every review app."
        )

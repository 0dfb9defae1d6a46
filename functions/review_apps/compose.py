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

from review_apps import ecs_params
from review_apps.app_env import PLACEHOLDERS
from review_apps.compose_checks import DEPENDS_CONDITIONS, IGNORED, REFUSED, SUPPORTED, Collector
from review_apps.durations import DurationError, parse_duration
from review_apps.limits import Limits
from review_apps.problems import Problems
from review_apps.untrusted import UnreadableFile, code, load_yaml, plain

_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}|\$\$")
_CONTAINER_NAME = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
_HOST_PORT = re.compile(r"(?:@|//)([A-Za-z0-9_-]{1,255}):(\d{1,5})")
_PROTOCOLS = ("tcp", "udp")
_MEMORY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([bkmg]?)b?\s*$", re.IGNORECASE)


@dataclass
class Translation:
    task_definition: dict[str, Any]
    notices: list[str] = field(default_factory=list)  # shown on the MR, launch goes on


def _interpolate(node: Any, values: dict[str, str], out: Collector, where: str) -> Any:
    """Compose's `${VAR}` / `${VAR:-default}` / `$$`, with GitLab CI's names as the only variables."""
    if isinstance(node, dict):
        return {k: _interpolate(v, values, out, f"{where}.{plain(k, 40)}") for k, v in node.items()}
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
            f"`{where}` uses {code('${' + name + '}')}, which review apps cannot fill in; use one of "
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
    if not isinstance(value, (str, float)):
        return None
    match = _MEMORY.match(str(value))
    if not match:
        return None
    number, unit = float(match.group(1)), match.group(2).lower()
    factor = {"": 1 / (1024 * 1024), "b": 1 / (1024 * 1024), "k": 1 / 1024, "m": 1, "g": 1024}[unit]
    return max(int(number * factor), 1)


def _command(value: Any, where: str, out: Collector) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            return shlex.split(value)
        except ValueError:
            out.problems.append(f"`{where}` has an unclosed quote: {code(value)}.")
            return None
    if isinstance(value, list) and all(isinstance(v, (str, int, float)) for v in value):
        return [str(v) for v in value]
    out.problems.append(f"`{where}` must be a string or a list of strings.")
    return None


def _environment(value: Any, service: str, out: Collector) -> list[dict[str, str]]:
    where = f"services.{service}.environment"
    pairs: list[tuple[Any, Any]] = []
    if isinstance(value, dict):
        pairs = list(value.items())
    elif isinstance(value, list):
        for entry in value:
            if not isinstance(entry, str):
                out.problems.append(f"`{where}` entries must be `NAME=value` strings, not {code(entry)}.")
                continue
            name, sep, rest = entry.partition("=")
            pairs.append((name, rest if sep else None))
    elif value is not None:
        out.problems.append(f"`{where}` must be a list or a mapping.")
    result = []
    for name, raw in pairs:
        if not isinstance(name, str) or not name.strip():
            out.problems.append(f"`{where}` has a variable without a name ({code(name)}).")
            continue
        if raw is None:
            out.problems.append(
                f"`{where}.{plain(name)}` has no value: compose would take it from the shell "
                "that runs it, which review apps do not have. Give it a value."
            )
            continue
        text = out.scalar(raw, f"{where}.{plain(name)}")
        if text is not None:
            result.append({"name": name, "value": text})
    return result


def _ports(value: Any, service: str, out: Collector) -> list[dict[str, Any]]:
    where = f"services.{service}.ports"
    mappings = []
    for entry in out.sequence(value, where):
        if isinstance(entry, dict):
            target, protocol = entry.get("target"), entry.get("protocol", "tcp")
        elif isinstance(entry, (str, int)) and not isinstance(entry, bool):
            text, _, protocol = str(entry).partition("/")
            target = text.rsplit(":", 1)[-1]
            protocol = protocol or "tcp"
        else:
            target, protocol = None, "tcp"
        try:
            port = int(target) if isinstance(target, (str, int)) and not isinstance(target, bool) else 0
        except ValueError:
            port = 0
        if not 1 <= port <= 65535 or protocol not in _PROTOCOLS:
            out.problems.append(f"`{where}`: {code(entry)} is not a port (ranges are not supported).")
            continue
        if isinstance(entry, str) and ":" in entry.partition("/")[0]:
            published = entry.partition("/")[0].split(":")[-2]
            if published and published != str(port):
                out.notices.append(
                    f"`{where}`: {code(entry)} publishes {code(published)}, but on Fargate a port is "
                    f"reached on its own number: the app is on {port}."
                )
        mappings.append({"containerPort": port, "hostPort": port, "protocol": protocol})
    return mappings


def _seconds(value: Any, where: str, out: Collector) -> int | None:
    if value is None:
        return None
    try:
        return parse_duration(value)
    except DurationError as exc:
        out.problems.append(f"`{where}`: {code(value)} {exc}.")
        return None


def _healthcheck(value: Any, service: str, out: Collector) -> dict[str, Any] | None:
    where = f"services.{service}.healthcheck"
    value = out.mapping(value, where)
    if not value or value.get("disable"):
        return None
    test = value.get("test")
    if isinstance(test, str):
        command = ["CMD-SHELL", test]
    elif (
        isinstance(test, list)
        and test
        and test[0] in ("CMD", "CMD-SHELL")
        and all(isinstance(t, (str, int, float)) and not isinstance(t, bool) for t in test)
    ):
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
        retries = value["retries"]
        if isinstance(retries, int) and not isinstance(retries, bool) and 1 <= retries <= 10:
            check["retries"] = retries
        else:
            out.problems.append(f"`{where}.retries:` {code(retries)} must be a whole number from 1 to 10.")
    return check


def _depends_on(value: Any, service: str, services: dict, out: Collector) -> list[dict[str, str]]:
    where = f"services.{service}.depends_on"
    entries = list(value.items()) if isinstance(value, dict) else [(name, {}) for name in out.sequence(value, where)]
    result = []
    for name, options in entries:
        if not isinstance(name, str) or name not in services:
            out.problems.append(f"`{where}` names {code(name)}, which is not a service.")
            continue
        condition = out.mapping(options, f"{where}.{plain(name)}").get("condition", "service_started")
        if not isinstance(condition, str) or condition not in DEPENDS_CONDITIONS:
            out.problems.append(f"`{where}.{plain(name)}.condition:` {code(condition)} is not supported.")
            continue
        result.append({"containerName": name, "condition": DEPENDS_CONDITIONS[condition]})
    return result


def _logging(value: Any, service: str, limits: Limits, out: Collector) -> dict[str, Any] | None:
    where = f"services.{service}.logging"
    value = out.mapping(value, where)
    if not value:
        return None
    driver = value.get("driver")
    if driver != "awslogs":
        out.problems.append(
            f"`{where}.driver:` {code(driver)} is not available; use `awslogs` (with "
            "`awslogs-group`, `awslogs-region` and `awslogs-stream-prefix` options)."
        )
        return None
    options: dict[str, str] = {}
    for key, raw in out.mapping(value.get("options"), f"{where}.options").items():
        text = out.scalar(raw, f"{where}.options.{plain(key, 40)}")
        if text is not None:
            options[str(key)] = text
    # Where the group really is (under the project's own prefix) is taskdef.derive's to decide.
    return {"logDriver": "awslogs", "options": options}


def _volumes(value: Any, service: str, named: set[str], out: Collector) -> list[dict[str, Any]]:
    where = f"services.{service}.volumes"
    mounts = []
    for entry in out.sequence(value, where):
        if isinstance(entry, dict):
            kind, source, target = entry.get("type", "volume"), entry.get("source"), entry.get("target")
            read_only = bool(entry.get("read_only"))
        elif isinstance(entry, str):
            parts = entry.split(":")
            source, target = (parts[0], parts[1]) if len(parts) > 1 else (None, parts[0])
            read_only = len(parts) > 2 and "ro" in parts[2].split(",")
            kind = "bind" if source and (source.startswith((".", "/", "~"))) else "volume"
        else:
            out.problems.append(f"`{where}`: {code(entry)} is not a volume mount.")
            continue
        if kind != "volume" or not source:
            out.problems.append(
                f"`{where}`: {code(entry)} mounts a path from the host, which Fargate does not have; "
                "use a named volume (declared under the top-level `volumes:`)."
            )
            continue
        if not isinstance(source, str) or source not in named:
            out.problems.append(f"`{where}`: volume {code(source)} is not declared under the top-level `volumes:`.")
            continue
        if not isinstance(target, str) or not target.startswith("/"):
            out.problems.append(f"`{where}`: {code(entry)} needs an absolute path to mount the volume at.")
            continue
        mounts.append({"sourceVolume": source, "containerPath": target, "readOnly": read_only})
    return mounts


def _memory_limits(service: dict, where: str, out: Collector) -> dict[str, Any]:
    deploy = out.mapping(service.get("deploy"), f"{where}.deploy")
    resources = out.mapping(deploy.get("resources"), f"{where}.deploy.resources")
    found: dict[str, Any] = {}
    for key, ecs_key, section in (
        ("mem_limit", "memory", "limits"),
        ("mem_reservation", "memoryReservation", "reservations"),
    ):
        fallback = out.mapping(resources.get(section), f"{where}.deploy.resources.{section}").get("memory")
        raw = service.get(key, fallback)
        if raw is not None:
            mib = memory_mib(raw)
            if mib is None:
                out.problems.append(f"`{where}.{key}:` {code(raw)} is not a memory size such as `512m` or `1g`.")
            else:
                found[ecs_key] = mib
    return found


def _container(
    name: str, service: dict, services: dict, named: set[str], limits: Limits, out: Collector
) -> dict[str, Any]:
    where = f"services.{plain(name)}"
    for key in service:
        text = str(key)
        if text.startswith("x-") or text in SUPPORTED:
            continue
        if text in REFUSED and not (text == "build" and "image" in service):
            out.problems.append(f"`{where}.{text}`: {REFUSED[text]}")
        elif text in IGNORED or text == "build":
            out.notices.append(f"`{where}.{text}`: " + IGNORED.get(text, "`build` is ignored: `image` is used."))
        else:
            out.problems.append(f"`{where}.{plain(key)}` is not supported by review apps; remove it.")
    image = service.get("image")
    if not isinstance(image, str) or not image.strip():
        if "build" not in service or image is not None:
            out.problems.append(f"`{where}` has no `image`.")
        image = ""
    container: dict[str, Any] = {"name": name, "image": image, "essential": True}
    for key, ecs_key in (("command", "command"), ("entrypoint", "entryPoint")):
        command = _command(service.get(key), f"{where}.{key}", out)
        if command is not None:
            container[ecs_key] = command
    environment = _environment(service.get("environment"), plain(name), out)
    if environment:
        container["environment"] = environment
    ports = _ports(service.get("ports"), plain(name), out)
    if ports:
        container["portMappings"] = ports
    container.update(_memory_limits(service, where, out))
    if "cpu_shares" in service:
        shares = service["cpu_shares"]
        if isinstance(shares, int) and not isinstance(shares, bool) and 0 <= shares <= 16384:
            container["cpu"] = shares
        else:
            out.problems.append(f"`{where}.cpu_shares:` {code(shares)} must be CPU units from 0 to 16384.")
    for key, ecs_key in (("working_dir", "workingDirectory"), ("user", "user")):
        if key in service:
            value = out.scalar(service[key], f"{where}.{key}")
            if value is not None:
                container[ecs_key] = value
    if service.get("stdin_open"):
        container["interactive"] = True
    if service.get("tty"):
        container["pseudoTerminal"] = True
    labels = service.get("labels")
    if isinstance(labels, dict):
        container["dockerLabels"] = {
            str(k): shown for k, v in labels.items() if (shown := out.scalar(v, f"{where}.labels")) is not None
        }
    elif isinstance(labels, list):
        container["dockerLabels"] = {
            str(label).partition("=")[0]: str(label).partition("=")[2]
            for label in labels
            if out.scalar(label, f"{where}.labels") is not None
        }
    elif labels is not None:
        out.problems.append(f"`{where}.labels` must be a list or a mapping.")
    if not container.get("dockerLabels"):
        container.pop("dockerLabels", None)
    health = _healthcheck(service.get("healthcheck"), plain(name), out)
    if health:
        container["healthCheck"] = health
    depends = _depends_on(service.get("depends_on"), plain(name), services, out)
    if depends:
        container["dependsOn"] = depends
    log = _logging(service.get("logging"), plain(name), limits, out)
    if log:
        container["logConfiguration"] = log
    mounts = _volumes(service.get("volumes"), plain(name), named, out)
    if mounts:
        container["mountPoints"] = mounts
    return container


def _by_service_name(containers: list[dict[str, Any]], out: Collector) -> None:
    """A notice for each variable that reaches another service by its compose name (`@db:5432`,
    `redis://cache:6379`): on Fargate the containers of one task share one network namespace."""
    names = {str(c["name"]) for c in containers}
    for container in containers:
        for variable in container.get("environment") or []:
            for service, port in _HOST_PORT.findall(str(variable.get("value", ""))):
                if service in names and service != container["name"]:
                    out.notices.append(
                        f"`services.{container['name']}.environment.{plain(variable['name'], 60)}` reaches "
                        f"service {code(service)} by name: the containers of one review app reach each other on "
                        f"`localhost` (here `localhost:{port}`), never by service name."
                    )
                    break


def _load(text: str, name: str, out: Collector) -> Any:
    try:
        return load_yaml(text, name)
    except UnreadableFile as exc:
        out.problems.append(str(exc))
        return None


def translate(
    compose_text: str,
    params_text: str | None,
    *,
    compose_path: str,
    params_path: str | None,
    placeholders: dict[str, str],
    limits: Limits,
    family: str,
) -> Translation | Problems:
    out = Collector()
    compose = _load(compose_text, compose_path, out)
    params = _load(params_text, params_path or "ecs-params.yml", out) if params_text is not None else {}
    if out.problems:
        return Problems(tuple(out.problems))
    if not isinstance(compose, dict) or not isinstance(compose.get("services"), dict) or not compose["services"]:
        hint = " (format 1, with services at the top level, is not supported)" if isinstance(compose, dict) else ""
        return Problems((f"{code(compose_path)} has no `services:`{hint}.",))
    compose = _interpolate(compose, placeholders, out, "compose")
    if "secrets" in compose:
        out.problems.append(f"`secrets`: {REFUSED['secrets']}")
    named = {key for key in out.mapping(compose.get("volumes"), "volumes") if isinstance(key, str)}
    services: dict = compose["services"]
    containers = []
    for name, service in services.items():
        if str(name).startswith("x-"):
            continue
        if not isinstance(name, str) or not _CONTAINER_NAME.match(name):
            out.problems.append(
                f"Service name {code(name)} cannot name a container: use letters, digits, `-` and `_` only."
            )
            continue
        containers.append(_container(name, out.mapping(service, f"services.{name}"), services, named, limits, out))

    _by_service_name(containers, out)
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
    ecs_params.apply(params, definition, containers, params_path or "ecs-params.yml", limits, out)
    if any("logConfiguration" in c for c in containers) and "executionRoleArn" not in definition:
        out.problems.append(
            "Containers log with `awslogs`, which needs a task execution role: set "
            "`task_definition.task_execution_role` in ecs-params.yml."
        )
    if out.problems:
        return Problems(tuple(out.problems), tuple(out.notices))
    return Translation(definition, out.notices)

"""`.gitlab/review-app.yml`: what a project asks for, checked before anything is launched.

Every problem is collected (not just the first) and phrased as "what is wrong — how to fix
it", because the list is shown verbatim on the merge request.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from review_apps import sizes
from review_apps.app_env import PLACEHOLDERS, parse_env, parse_secrets
from review_apps.durations import DurationError, parse_duration
from review_apps.problems import Problems
from review_apps.untrusted import UnreadableFile, code, load_yaml

SPEC_PATH = ".gitlab/review-app.yml"
TRIGGERS = ("pipeline", "merge_request")
_KNOWN_KEYS = (
    "task_definition",
    "compose",
    "ecs_params",
    "container",
    "port",
    "image",
    "command",
    "ttl",
    "trigger",
    "cpu",
    "memory",
    "capacity",
    "architecture",
    "label",
    "drafts",
    "wrap_in_timeout",
    "health_check",
    "sleep_after",
    "show_crash_log",
    "wake_on_review_request",
    "env",
    "secrets",
)
CAPACITIES = ("on_demand", "spot")
ARCHITECTURES = ("x86_64", "arm64")
# What an ALB health check path may hold (its documented characters, minus quotes and `$`).
_HEALTH_CHECK = re.compile(r"/[A-Za-z0-9/._~\-@:+&=%]{0,254}")
_PLACEHOLDER = re.compile(r"\$\{([^}]*)\}")
_TASK_DEFINITION = re.compile(r"^(arn:aws[\w-]*:ecs:[\w-]+:\d{12}:task-definition/)?[A-Za-z0-9_-]{1,255}(:\d+)?$")


@dataclass(frozen=True)
class Spec:
    task_definition: str  # "" when the app is described by `compose`
    container: str | None
    port: int | None
    image: str | None
    command: tuple[str, ...] | None
    ttl_seconds: int
    ttl_capped_from: int  # the TTL asked for when it was above the install's maximum, else 0
    trigger: str
    compose: str | None = None  # path of a docker-compose.yml in the repository
    ecs_params: str | None = None  # path of an ecs-params.yml in the repository
    cpu: int | None = None  # task CPU units; None keeps the task definition's
    memory: int | None = None  # task memory, MiB; None keeps the task definition's
    capacity: str = "on_demand"  # or "spot": Fargate Spot, cheaper, may be interrupted
    architecture: str | None = None  # "x86_64" / "arm64"; None keeps the task definition's
    label: str | None = None  # only MRs with this label get an app
    drafts: bool = False  # whether draft MRs get an app automatically
    # Run the app's command inside `timeout` as well: None lets taskdef decide (only where safe).
    wrap_in_timeout: bool | None = None
    # The path the load balancer checks (address mode): the app is routed once it answers 200-399.
    health_check: str = "/"
    # Address mode: stop after this long without a visit (seconds; 0 = never); None = the install's default.
    sleep_after: int | None = None
    # A public project's MR shows a crashed app's last log lines only if the spec says `true`
    # (anyone can read a public MR); a private project's does unless it says `false`.
    show_crash_log: bool | None = None
    # Address mode with sleep: a review request (a reviewer added, or asked again) wakes a sleeping app.
    wake_on_review_request: bool = True
    # Variables for the review app (values may use the placeholders), and secrets as references
    # that ECS resolves at start (the functions never read a value): (name, value) pairs.
    env: tuple[tuple[str, str], ...] = ()
    secrets: tuple[tuple[str, str], ...] = ()


def parse_spec(
    text: str, default_ttl: int, max_ttl: int, max_cpu: int = 16384, max_memory: int = 122880
) -> Spec | Problems:
    try:
        data = load_yaml(text, SPEC_PATH)
    except UnreadableFile as exc:
        return Problems((str(exc),))
    if not isinstance(data, dict):
        return Problems((f"`{SPEC_PATH}` must be a YAML mapping with at least `task_definition: <family>`.",))

    problems: list[str] = []
    for key in data:
        if key not in _KNOWN_KEYS:
            problems.append(f"Unknown key {code(key)}; the keys are {', '.join(f'`{k}`' for k in _KNOWN_KEYS)}.")

    compose_path = _repository_path(data, "compose", problems)
    params_path = _repository_path(data, "ecs_params", problems)
    task_definition = data.get("task_definition")
    if compose_path or "compose" in data:
        if task_definition is not None:
            problems.append("Give either `task_definition` or `compose`, not both.")
        task_definition = ""
    elif params_path:
        problems.append("`ecs_params` goes with `compose:`; name your docker-compose.yml too.")
    elif not isinstance(task_definition, str) or not task_definition.strip():
        problems.append(
            "`task_definition` is required (the ECS task definition your app already runs with, as `family` "
            "or `family:revision`), or `compose:` naming a docker-compose.yml."
        )
        task_definition = ""
    if task_definition and not _TASK_DEFINITION.match(task_definition.strip()):
        problems.append(
            f"`task_definition:` {code(task_definition)} is not a task definition family, "
            "`family:revision` or task definition ARN."
        )

    container = data.get("container")
    if container is not None and (not isinstance(container, str) or not container.strip()):
        problems.append("`container` must be the name of a container in the task definition.")
        container = None

    port = data.get("port")
    if port is not None and (isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535):
        problems.append(f"`port:` {code(port)} must be a number from 1 to 65535.")
        port = None

    image = data.get("image")
    if image is not None:
        if not isinstance(image, str) or not image.strip():
            problems.append("`image` must be an image reference such as `registry/app:${CI_COMMIT_SHA}`.")
            image = None
        else:
            for name in _PLACEHOLDER.findall(image):
                if name not in PLACEHOLDERS:
                    problems.append(
                        f"`image` uses {code('${' + name + '}')}, which is not available; use one of "
                        + ", ".join(f"`${{{p}}}`" for p in PLACEHOLDERS)
                        + "."
                    )

    command = data.get("command")
    if command is not None:
        if isinstance(command, str) and command.strip():
            command = tuple(shlex.split(command))
        elif isinstance(command, list) and command and all(isinstance(c, (str, int)) for c in command):
            command = tuple(str(c) for c in command)
        else:
            problems.append('`command` must be a string or a list of strings, e.g. `["gunicorn", "app:wsgi"]`.')
            command = None

    ttl_seconds, capped_from = default_ttl, 0
    if "ttl" in data:
        try:
            asked = parse_duration(data["ttl"])
        except DurationError as exc:
            problems.append(f"`ttl:` {code(data['ttl'])} {exc}.")
        else:
            if asked > max_ttl:
                ttl_seconds, capped_from = max_ttl, asked
            elif asked < 60:
                problems.append(f"`ttl:` {code(data['ttl'])} is too short; give the app at least 1m.")
            else:
                ttl_seconds = asked

    trigger = data.get("trigger", "pipeline")
    if trigger not in TRIGGERS:
        problems.append(
            f"`trigger:` {code(trigger)} is not supported; use `pipeline` (deploy when the MR's pipeline succeeds) "
            "or `merge_request` (deploy when the MR opens and on every push)."
        )

    cpu = _size(data, "cpu", sizes.cpu_units, max_cpu, "units", "CPU units (`512`) or vCPUs (`0.5 vCPU`)", problems)
    memory = _size(
        data, "memory", sizes.memory_mib, max_memory, "MiB", "a size such as `1024` (MiB) or `2GB`", problems
    )
    capacity = data.get("capacity", "on_demand")
    if capacity not in CAPACITIES:
        problems.append(f"`capacity:` {code(capacity)} is not supported; use `on_demand` or `spot`.")
    architecture = data.get("architecture")
    if architecture is not None and architecture not in ARCHITECTURES:
        problems.append(f"`architecture:` {code(architecture)} is not supported; use `x86_64` or `arm64`.")

    label = data.get("label")
    if label is not None and (not isinstance(label, str) or not label.strip()):
        problems.append("`label` must be the name of a label, e.g. `label: review-app`.")
        label = None
    drafts = data.get("drafts", False)
    if not isinstance(drafts, bool):
        problems.append(f"`drafts:` {code(drafts)} must be `true` or `false`.")
    show_crash_log = data.get("show_crash_log")
    if show_crash_log is not None and not isinstance(show_crash_log, bool):
        problems.append(f"`show_crash_log:` {code(show_crash_log)} must be `true` or `false`.")
    wake_on_review_request = data.get("wake_on_review_request", True)
    if not isinstance(wake_on_review_request, bool):
        problems.append(f"`wake_on_review_request:` {code(wake_on_review_request)} must be `true` or `false`.")

    wrap = data.get("wrap_in_timeout")
    if wrap is not None and not isinstance(wrap, bool):
        problems.append(f"`wrap_in_timeout:` {code(wrap)} must be `true` or `false`.")

    health_check = data.get("health_check", "/")
    if not isinstance(health_check, str) or not _HEALTH_CHECK.fullmatch(health_check):
        problems.append(
            f"`health_check:` {code(health_check)} must be a path starting with `/` (at most 255 characters "
            "of letters, digits and `/._~-@:+&=%`), such as `/healthz`."
        )

    sleep_after = _sleep_after(data.get("sleep_after"), problems)
    env = parse_env(data.get("env"), problems)
    secrets = parse_secrets(data.get("secrets"), {name for name, _ in env}, problems)

    if problems:
        return Problems(tuple(problems))
    return Spec(
        task_definition=str(task_definition).strip(),
        container=container.strip() if container else None,
        port=port,
        image=image.strip() if image else None,
        command=command,
        ttl_seconds=ttl_seconds,
        ttl_capped_from=capped_from,
        trigger=trigger,
        compose=compose_path,
        ecs_params=params_path,
        cpu=cpu,
        memory=memory,
        capacity=capacity,
        architecture=architecture,
        label=label.strip() if label else None,
        drafts=drafts,
        wrap_in_timeout=wrap,
        health_check=health_check,
        sleep_after=sleep_after,
        show_crash_log=show_crash_log if isinstance(show_crash_log, bool) else None,
        wake_on_review_request=wake_on_review_request is not False,
        env=env,
        secrets=secrets,
    )


SLEEP_AFTER_MIN = 300  # the ALB's metrics come per minute: shorter would stop apps that are in use


def _sleep_after(value: Any, problems: list[str]) -> int | None:
    if value is None:
        return None
    if value == 0 or value == "0":
        return 0
    try:
        seconds = parse_duration(value) if isinstance(value, str | int) else -1
    except DurationError:
        seconds = -1
    if seconds < SLEEP_AFTER_MIN:
        problems.append(
            f"`sleep_after:` {code(value)} must be a duration of at least 5m, such as `15m` or `1h`, or `0` "
            "to never sleep."
        )
        return None
    return seconds


def _size(
    data: dict[Any, Any],
    key: str,
    parse: Callable[[Any], int | None],
    limit: int,
    unit: str,
    example: str,
    problems: list[str],
) -> int | None:
    if key not in data:
        return None
    value = parse(data[key])
    if value is None:
        problems.append(f"`{key}:` {code(data[key])} is not {example}.")
    elif value > limit:
        problems.append(f"`{key}:` {code(data[key])} is more than this install allows ({limit} {unit}).")
    return value


def _repository_path(data: dict, key: str, problems: list[str]) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        problems.append(f"`{key}` must be a path in the repository, such as `docker-compose.yml`.")
        return None
    path = value.strip()
    while path.startswith("./"):
        path = path[2:]
    if path.startswith("/") or ".." in path.split("/"):
        problems.append(f"`{key}:` {code(value)} must be a path inside the repository (no leading `/`, no `..`).")
        return None
    return path

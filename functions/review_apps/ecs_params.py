"""ecs-params.yml (ecs-cli's format) applied to the task definition a compose file became: the
network mode, roles, task size, per-service options (`essential`, `secrets`), and what the
install ignores."""

from __future__ import annotations

from typing import Any

from review_apps import app_env, sizes
from review_apps import limits as install_limits
from review_apps.compose_checks import Collector
from review_apps.limits import Limits
from review_apps.untrusted import code, plain


def apply(params: Any, definition: dict, containers: list[dict], where: str, limits: Limits, out: Collector) -> None:
    if not params:
        return
    if not isinstance(params, dict):
        out.problems.append(f"{code(where)} must be a mapping with `version: 1`.")
        return
    shown = code(where)
    if str(params.get("version")) != "1":
        out.problems.append(f"{shown} must say `version: 1` (the ecs-cli format).")
    task = out.mapping(params.get("task_definition"), "task_definition")
    mode = task.get("ecs_network_mode", "awsvpc")
    if mode != "awsvpc":
        out.problems.append(f"{shown}: `ecs_network_mode:` {code(mode)} is not available on Fargate; use `awsvpc`.")
    for key, ecs_key in (
        ("task_role_arn", install_limits.TASK_ROLE),
        ("task_execution_role", install_limits.EXECUTION_ROLE),
    ):
        role = task.get(key)
        if not role:
            continue
        problem = install_limits.role_problem(limits, ecs_key, role, f"{shown} (`{key}`)")
        if problem:
            out.problems.append(problem)
        else:
            definition[ecs_key] = role
    size = out.mapping(task.get("task_size"), "task_definition.task_size")
    if "cpu_limit" in size:
        cpu = sizes.cpu_units(size["cpu_limit"])
        if cpu is None:
            out.problems.append(
                f"{shown}: `cpu_limit:` {code(size['cpu_limit'])} is not CPU units (256) or `0.25 vCPU`."
            )
        else:
            definition["cpu"] = str(cpu)
    if "mem_limit" in size:
        memory = sizes.memory_mib(size["mem_limit"])
        if memory is None:
            out.problems.append(
                f"{shown}: `mem_limit:` {code(size['mem_limit'])} is not a size such as `1GB` or `512`."
            )
        else:
            definition["memory"] = str(memory)
    by_name = {c["name"]: c for c in containers}
    for name, options in out.mapping(task.get("services"), "task_definition.services").items():
        if not isinstance(name, str) or name not in by_name:
            out.problems.append(
                f"{shown}: `task_definition.services.{plain(name)}` is not a service of the compose file."
            )
            continue
        for key, value in out.mapping(options, f"task_definition.services.{name}").items():
            if key == "essential":
                by_name[name]["essential"] = bool(value)
            elif key == "secrets":
                found = _secrets(value, f"{shown}: `task_definition.services.{name}.secrets`", out)
                if found:
                    by_name[name]["secrets"] = found
            else:
                out.notices.append(
                    f"{shown}: `task_definition.services.{name}.{plain(key)}` is ignored; set it in the compose file."
                )
    run_params = out.mapping(params.get("run_params"), "run_params")
    network = out.mapping(run_params.get("network_configuration"), "run_params.network_configuration")
    if network.get("awsvpc_configuration"):
        out.notices.append(
            f"{shown}: `run_params.network_configuration` is ignored: this install sets subnets, security groups "
            "and public IPs for every review app."
        )


MAX_SECRETS = 50


def _secrets(value: Any, where: str, out: Collector) -> list[dict[str, str]]:
    """ecs-cli's `secrets: [{value_from: <SSM name or ARN | secret ARN>, name: VAR}]`, as ECS's
    container `secrets` (`valueFrom`). Only references: ECS fetches the values at start. What the
    project may name is checked at launch (ownership.secret_problem), like the spec's `secrets:`."""
    entries = out.sequence(value, where)
    if len(entries) > MAX_SECRETS:
        out.problems.append(f"{where} lists {len(entries)} secrets; at most {MAX_SECRETS} are allowed.")
        return []
    found: list[dict[str, str]] = []
    problems: list[str] = []
    for entry in entries:
        if not isinstance(entry, dict) or set(entry) != {"name", "value_from"}:
            out.problems.append(f"{where}: each entry must be `{{name: VAR, value_from: <parameter or secret>}}`.")
            continue
        secrets = app_env.parse_secrets({entry["name"]: entry["value_from"]}, set(), problems)
        found += [{"name": name, "valueFrom": reference} for name, reference in secrets]
    out.problems += [f"{where}: {problem}" for problem in problems]
    return found

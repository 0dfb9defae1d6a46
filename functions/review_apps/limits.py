"""The install's limits, which no file of a project can lift: roles, task size and log groups
(which images and roles a project may use is review_apps.ownership's). Checked on the task
definition a review app will really run, whatever set each value (the base definition, compose,
ecs-params or the spec)."""

from __future__ import annotations

from dataclasses import dataclass

from review_apps.untrusted import code

TASK_ROLE = "taskRoleArn"
EXECUTION_ROLE = "executionRoleArn"


@dataclass(frozen=True)
class Limits:
    # Roles a review app may run with, one list per kind, so that an execution role (which can
    # pull images and read secrets) can never become the role the app's own code gets.
    task_role_arns: tuple[str, ...] = ()
    execution_role_arns: tuple[str, ...] = ()
    max_cpu: int = 2048
    max_memory: int = 8192
    log_group_prefix: str = "/review-apps/"


def role_problem(limits: Limits, field: str, role: object, where: str) -> str | None:
    """None when `role` may be used as `field` (taskRoleArn or executionRoleArn)."""
    allowed = limits.task_role_arns if field == TASK_ROLE else limits.execution_role_arns
    kind = "task role" if field == TASK_ROLE else "task execution role"
    if isinstance(role, str) and role in allowed:
        return None
    offer = (
        "the allowed ones are " + ", ".join(code(r) for r in allowed)
        if allowed
        else "this install allows none; ask your platform team"
    )
    return f"{where} uses {code(role)} as its {kind}, which review apps may not use; {offer}."


def size_problem(limits: Limits, cpu: int, memory: int) -> str | None:
    if cpu > limits.max_cpu or memory > limits.max_memory:
        return (
            f"The review app's task would have {cpu} CPU units and {memory} MiB; this install allows at most "
            f"{limits.max_cpu} CPU units and {limits.max_memory} MiB. Set smaller `cpu:` and `memory:` in the spec."
        )
    return None


def image_problem(image: object, container: str) -> str | None:
    """Whether an image may run is review_apps.ownership's to say; here only that there is one."""
    if not isinstance(image, str) or not image.strip():
        return f"Container {code(container)} has no image."
    return None

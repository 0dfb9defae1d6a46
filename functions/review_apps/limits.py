"""The install's limits, which no file of a project can lift: roles, task size, image
registries and log groups. Checked on the task definition a review app will really run,
whatever set each value (the base definition, compose, ecs-params or the spec)."""

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
    image_registries: tuple[str, ...] = ()  # registry hosts or host/path prefixes; empty = any
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


def image_location(image: str) -> str:
    """`registry-host/path` of an image reference, as Docker resolves it: `nginx:1` is
    `docker.io/library/nginx`, `acme/app` is `docker.io/acme/app`."""
    name = image.strip().split("@", 1)[0]
    last = name.rsplit("/", 1)
    if ":" in last[-1]:  # a tag, not a registry port
        name = name[: len(name) - len(last[-1])] + last[-1].split(":", 1)[0]
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return f"{first.lower()}/{rest}"
    return f"docker.io/{name}" if rest else f"docker.io/library/{name}"


def image_problem(limits: Limits, image: object, container: str) -> str | None:
    if not isinstance(image, str) or not image.strip():
        return f"Container {code(container)} has no image."
    if not limits.image_registries:
        return None
    location = image_location(image)
    for entry in limits.image_registries:
        allowed = entry.strip().rstrip("/")
        host, _, path = allowed.partition("/")
        allowed = host.lower() + ("/" + path if path else "")
        if location == allowed or location.startswith(allowed + "/"):
            return None
    return (
        f"Container {code(container)} would run image {code(image)}, which is not from a registry this install "
        "allows (" + ", ".join(code(r) for r in limits.image_registries) + "). Push the image there."
    )


def place_log_group(limits: Limits, group: str) -> str:
    """`group` under the install's prefix: logs of review apps stay among the install's groups."""
    prefix = limits.log_group_prefix
    if group.startswith(prefix):
        return group
    return prefix + group.lstrip("/")

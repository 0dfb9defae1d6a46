"""What a compose file may say, and the collector every compose and ecs-params check reports to.

Nothing in a project's files is dropped silently: a key that would change how the app behaves on
Fargate refuses the launch with what to do instead (REFUSED); a key that makes no difference is
listed on the MR and the launch goes on (IGNORED).
"""

from __future__ import annotations

from typing import Any

from review_apps.untrusted import code

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
    "secrets": "compose `secrets` are files, which Fargate cannot mount: name each secret under `secrets:` in "
    "`.gitlab/review-app.yml`, or under `task_definition.services.<name>.secrets` in ecs-params.yml "
    "(README, Settings and secrets).",
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
    "image",
    "command",
    "entrypoint",
    "environment",
    "ports",
    "mem_limit",
    "mem_reservation",
    "cpu_shares",
    "working_dir",
    "user",
    "healthcheck",
    "depends_on",
    "logging",
    "volumes",
    "labels",
    "stdin_open",
    "tty",
}
DEPENDS_CONDITIONS = {
    "service_started": "START",
    "service_healthy": "HEALTHY",
    "service_completed_successfully": "SUCCESS",
}


class Collector:
    """Problems (refuse the launch) and notices (shown on the MR) found in a project's files."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.notices: list[str] = []

    def mapping(self, value: Any, where: str) -> dict:
        """`value` if it is a mapping; {} (and a problem, unless absent) otherwise."""
        if isinstance(value, dict):
            return value
        if value is not None:
            self.problems.append(f"`{where}` must be a mapping (`key: value` lines), not {code(value)}.")
        return {}

    def sequence(self, value: Any, where: str) -> list:
        if isinstance(value, list):
            return value
        if value is not None:
            self.problems.append(f"`{where}` must be a list (`- item` lines), not {code(value)}.")
        return []

    def scalar(self, value: Any, where: str) -> str | None:
        """A string, number or boolean as text; None (and a problem) for anything else."""
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, (str, int, float)):
            return str(value)
        self.problems.append(f"`{where}` must be a single value, not {code(value)}.")
        return None

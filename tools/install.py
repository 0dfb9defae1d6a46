"""What the operator tools (doctor, onboard, smoke) know of a deployed install: its stack's
parameters and outputs, read from CloudFormation, and the secrets those name, read from SSM.

The stack is the one named on the command line (STACK=), else samconfig.toml's `stack_name`
(what `sam deploy --guided` saved), else gitlab-review-apps.
"""

from __future__ import annotations

import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_STACK = "gitlab-review-apps"
sys.path.insert(0, str(ROOT / "functions"))  # the functions' own rules (ownership, tokens, settings)


@dataclass(frozen=True)
class Check:
    """One thing a tool looked at: whether it is right, and if not the command that fixes it.
    `changed`: the tool changed something to make it right (make onboard)."""

    ok: bool
    what: str
    fix: str = ""
    changed: bool = False


def report(title: str, checks: list[Check]) -> str:
    lines = [title]
    for check in checks:
        mark = "FAIL" if not check.ok else ("done" if check.changed else "ok  ")
        lines.append(f"  {mark} {check.what}")
        if not check.ok and check.fix:
            lines.append(f"       fix: {check.fix}")
    failed, changed = sum(not c.ok for c in checks), sum(c.changed for c in checks)
    lines.append(f"{len(checks)} checks, {failed} failed" + (f", {changed} changed" if changed else ""))
    return "\n".join(lines)


class InstallError(Exception):
    """The install can't be read: `fix` says what to do."""

    def __init__(self, what: str, fix: str) -> None:
        super().__init__(what)
        self.what, self.fix = what, fix


def stack_name(given: str = "", samconfig: Path = ROOT / "samconfig.toml") -> str:
    if given:
        return given
    try:
        config = tomllib.loads(samconfig.read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return DEFAULT_STACK
    for section in ("deploy", "global"):
        name = config.get("default", {}).get(section, {}).get("parameters", {}).get("stack_name")
        if isinstance(name, str) and name:
            return name
    return DEFAULT_STACK


class Clients:
    """The AWS clients the tools use (boto3's, or ones pointed at the local emulator)."""

    def __init__(self, factory: Any) -> None:
        self._factory = factory
        self._made: dict[str, Any] = {}

    def __getattr__(self, service: str) -> Any:
        if service.startswith("_"):
            raise AttributeError(service)
        if service not in self._made:
            self._made[service] = self._factory(service)
        return self._made[service]


def error_code(exc: Exception) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", type(exc).__name__))


@dataclass
class Install:
    stack: str
    status: str
    params: dict[str, str]
    outputs: dict[str, str]
    aws: Clients

    @classmethod
    def read(cls, stack: str, aws: Clients) -> Install:
        from botocore.exceptions import ClientError

        try:
            [found] = aws.cloudformation.describe_stacks(StackName=stack)["Stacks"]
        except ClientError as exc:
            raise InstallError(
                f"stack {stack}: {error_code(exc)}",
                "sam deploy --guided (the stack name is in samconfig.toml), or STACK=<the stack's name>",
            ) from None
        return cls(
            stack,
            found.get("StackStatus", ""),
            {p["ParameterKey"]: p.get("ParameterValue", "") for p in found.get("Parameters", [])},
            {o["OutputKey"]: o["OutputValue"] for o in found.get("Outputs", [])},
            aws,
        )

    @property
    def address_mode(self) -> bool:
        return bool(self.params.get("AlbListenerArn") or self.params.get("AlbCertificateArn"))

    @property
    def sign_in(self) -> bool:
        return self.address_mode and self.params.get("ReviewAppAccess", "members") == "members"

    @property
    def gitlab_url(self) -> str:
        return self.params.get("GitLabUrl", "").rstrip("/")

    def secret(self, parameter_key: str) -> str:
        """The SecureString the stack parameter `parameter_key` names (raises ClientError)."""
        name = self.params.get(parameter_key, "")
        return str(self.aws.ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"])

    def gitlab(self, token: str = "") -> Any:
        """python-gitlab, as the bot (or with `token`, e.g. a maintainer's for this run)."""
        import gitlab

        return gitlab.Gitlab(
            self.gitlab_url,
            private_token=token or self.secret("GitLabTokenParameterName"),
            timeout=15,
            retry_transient_errors=True,
        )

    def records(self) -> Any:
        from review_apps.adapters.store import RecordStore

        return RecordStore(self.outputs.get("RecordsTableName", ""), self.aws.dynamodb)

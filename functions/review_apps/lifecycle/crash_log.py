"""Where an app's logs are, and what of a crashed app's log the MR may show, as pure rules.

The awslogs driver names a container's stream `<awslogs-stream-prefix>/<container>/<task id>`.
The lines shown are the last few of the failed container's stream, cut to a size GitLab shows
well, with the values of the task's secret-looking environment variables and the passwords in
URLs masked, and invisible or bidi characters removed. Whether they are
shown at all depends on who can read the MR: anyone, for a public project (opt-in then).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

LINES = 30
BYTES = 4096
# Names whose values are masked: passwords, secrets, tokens, keys, credentials, auth, DSNs
# (Sentry's carries a key), private anything.
SECRET_NAME = re.compile(r"PASS|PWD|SECRET|TOKEN|KEY|CRED|AUTH|DSN|PRIVATE", re.IGNORECASE)
MASK = "****"
_MIN_SECRET = 4  # shorter values would mask ordinary words
_REGION = re.compile(r"[a-z]{2}(?:-[a-z]+)+-\d{1,2}")
_UNPRINTABLE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|[\x00-\x08\x0b-\x1f\x7f]")
# The password of any `scheme://user:password@host` (a DATABASE_URL printed at start, say).
_URL_PASSWORD = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*://[^\s/:@]*:)([^\s/@]+)(@)")


def _visible(text: str) -> str:
    """`text` without terminal escapes, control characters, and invisible or bidi formatting
    characters (Unicode's Cf: zero-width spaces and joiners, direction overrides): one of those
    inside a secret would slip it past the mask, and on the MR they could disguise a line."""
    return "".join(c for c in _UNPRINTABLE.sub("", text) if unicodedata.category(c) != "Cf")


@dataclass(frozen=True)
class LogStream:
    container: str
    group: str
    stream_prefix: str
    region: str

    def stream(self, task_arn: str) -> str:
        return f"{self.stream_prefix}/{self.container}/{task_arn.rsplit('/', 1)[-1]}"

    def encode(self) -> str:
        """One string for the record (a list of strings): fields joined by tabs, which no field has."""
        return "\t".join((self.container, self.group, self.stream_prefix, self.region))

    @staticmethod
    def decode(text: str) -> LogStream | None:
        parts = text.split("\t")
        return LogStream(*parts) if len(parts) == 4 and all(parts) else None


def streams(register_kwargs: dict[str, Any], default_region: str) -> list[LogStream]:
    """Each container's awslogs stream, for those that have one (others have no logs to link)."""
    found = []
    for container in register_kwargs.get("containerDefinitions") or []:
        config = container.get("logConfiguration") or {}
        options = config.get("options") or {}
        group, prefix = options.get("awslogs-group"), options.get("awslogs-stream-prefix")
        fields = (container.get("name"), group, prefix)
        if config.get("logDriver") == "awslogs" and all(isinstance(f, str) and f and "\t" not in f for f in fields):
            region = options.get("awslogs-region")
            region = region if isinstance(region, str) and _REGION.fullmatch(region) else default_region
            found.append(LogStream(str(container["name"]), str(group), str(prefix), region or "us-east-1"))
    return found


def _console_part(value: str) -> str:
    # The CloudWatch console's fragment wants a URL-encoded value with % written as $25.
    return quote(quote(value, safe=""), safe="").replace("%", "$")


def console_url(stream: LogStream, task_arn: str) -> str:
    region = quote(stream.region, safe="")
    return (
        f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}#logsV2:log-groups/log-group/"
        f"{_console_part(stream.group)}/log-events/{_console_part(stream.stream(task_arn))}"
    )


def secret_values(register_kwargs: dict[str, Any], container: str) -> list[str]:
    """The values of the container's environment variables whose names look secret."""
    for definition in register_kwargs.get("containerDefinitions") or []:
        if definition.get("name") == container:
            return [
                str(item["value"])
                for item in definition.get("environment") or []
                if isinstance(item, dict)
                and SECRET_NAME.search(str(item.get("name", "")))
                and len(str(item.get("value", ""))) >= _MIN_SECRET
            ]
    return []


def last_lines(messages: list[str], secrets: list[str]) -> str:
    """The last LINES lines (at most BYTES), masked and stripped of terminal escapes, oldest first."""
    lines: list[str] = []
    for message in messages:
        lines += str(message).splitlines() or [""]
    text_lines = []
    shown = sorted({_visible(secret) for secret in secrets if len(_visible(secret)) >= _MIN_SECRET}, key=len)
    for line in lines[-LINES:]:
        clean = _visible(line)
        for secret in reversed(shown):
            clean = clean.replace(secret, MASK)
        text_lines.append(_URL_PASSWORD.sub(rf"\g<1>{MASK}\g<3>", clean))
    text = "\n".join(text_lines)
    while len(text.encode()) > BYTES and "\n" in text:
        text = text.split("\n", 1)[1]  # the oldest lines go first
    return text.encode()[-BYTES:].decode("utf-8", errors="ignore")


def may_show(visibility: str, opted_in: bool, opted_out: bool = False) -> bool:
    """A private project's MR is read by its members (unless the spec says `show_crash_log: false`);
    anything more visible only if the spec says `show_crash_log: true`."""
    if opted_out:
        return False
    return visibility == "private" or opted_in

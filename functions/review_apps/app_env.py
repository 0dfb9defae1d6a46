"""What a review app is told: where it lives and what it serves, under GitLab CI's names (plus
REVIEW_APP_*), in every container of its task; and the placeholders a project's spec and compose
file may use, which are the same values.

In IP mode the address is not known before the task runs (it gets its IP from ECS at start), so
the three address variables are absent there, and a placeholder naming one is a problem.
"""

from __future__ import annotations

import re

from review_apps.model.record import MergeRequestRef
from review_apps.untrusted import code

# Known before the task starts only in address mode.
ADDRESS_VARIABLES = ("REVIEW_APP_URL", "CI_ENVIRONMENT_URL", "REVIEW_APP_HOST")
# Every name the install sets: a project may not set these (spec `env:` and `secrets:`), and they
# win over the same names in a base task definition or a compose file.
INSTALL_VARIABLES = frozenset(
    {
        "REVIEW_APP",
        *ADDRESS_VARIABLES,
        "CI_ENVIRONMENT_NAME",
        "CI_MERGE_REQUEST_IID",
        "CI_COMMIT_SHA",
        "CI_COMMIT_SHORT_SHA",
        "CI_COMMIT_REF_NAME",
        "CI_COMMIT_REF_SLUG",
        "CI_PROJECT_ID",
        "CI_PROJECT_PATH",
    }
)
# What `${…}` may name in a spec's `image:` and `env:` values and in a compose file.
PLACEHOLDERS = tuple(sorted((INSTALL_VARIABLES - {"REVIEW_APP"}) | {"CI_PROJECT_PATH_SLUG"}))
_PLACEHOLDER = re.compile(r"\$\{([^}]*)\}")


def ref_slug(ref: str) -> str:
    """GitLab's CI_COMMIT_REF_SLUG: lower-cased, non-alphanumerics to `-`, at most 63 chars."""
    slug = re.sub(r"[^a-z0-9]", "-", ref.lower())[:63]
    return slug.strip("-")


def environment_name(source_branch: str) -> str:
    """The GitLab environment of an MR's review app."""
    return f"review/{ref_slug(source_branch)}"


def variables(mr: MergeRequestRef, sha: str, host: str = "") -> dict[str, str]:
    """The install's variables for the app of `mr` at commit `sha`; `host`: its address (address
    mode), or "" (IP mode: the address variables are left out)."""
    told = {
        "REVIEW_APP": "true",
        "CI_ENVIRONMENT_NAME": environment_name(mr.source_branch),
        "CI_MERGE_REQUEST_IID": str(mr.iid),
        "CI_COMMIT_SHA": sha,
        "CI_COMMIT_SHORT_SHA": sha[:8],
        "CI_COMMIT_REF_NAME": mr.source_branch,
        "CI_COMMIT_REF_SLUG": ref_slug(mr.source_branch),
        "CI_PROJECT_ID": str(mr.project_id),
        "CI_PROJECT_PATH": mr.project_path,
    }
    if host:
        url = f"https://{host}"
        told.update(REVIEW_APP_URL=url, CI_ENVIRONMENT_URL=url, REVIEW_APP_HOST=host)
    return told


def placeholder_values(mr: MergeRequestRef, sha: str, host: str = "") -> dict[str, str]:
    """What each `${NAME}` a project may write stands for at this launch."""
    values = {k: v for k, v in variables(mr, sha, host).items() if k != "REVIEW_APP"}
    values["CI_PROJECT_PATH_SLUG"] = ref_slug(mr.project_path)
    return values


def unfilled(template: str, values: dict[str, str]) -> list[str]:
    """The placeholders in `template` that `values` cannot fill (address ones, in IP mode)."""
    return [name for name in _PLACEHOLDER.findall(template) if name not in values]


def fill(template: str, values: dict[str, str]) -> str:
    """`template` with its placeholders filled (check `unfilled` first)."""
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)


def address_only(name: str) -> str:
    return (
        f"`${{{name}}}` is known only when review apps have addresses (address mode); this install gives each "
        "app an IP address, which ECS assigns as the task starts. Leave it out, or ask the platform team."
    )


# --------------------------------------------------------------------------- a project's own settings

MAX_VARIABLES = 50
MAX_VALUE = 4096
MAX_REFERENCE = 2048
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_REFERENCE = re.compile(r"[\x21-\x7e]+")  # printable ASCII, no spaces: SSM names and ARNs are


def _names(kind: str, data: object, problems: list[str]) -> dict[str, object]:
    """The `kind:` mapping's entries whose names are usable (each other one is a problem)."""
    if data is None:
        return {}
    if not isinstance(data, dict):
        problems.append(f"`{kind}:` must be a mapping of variable names to values (`NAME: value` lines).")
        return {}
    if len(data) > MAX_VARIABLES:
        problems.append(f"`{kind}:` has {len(data)} variables; at most {MAX_VARIABLES} are allowed.")
        return {}
    usable: dict[str, object] = {}
    for name, value in data.items():
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            problems.append(
                f"`{kind}:` {code(name)} is not a variable name: use letters, digits and `_`, not starting with a "
                "digit, at most 128 characters."
            )
        elif name in INSTALL_VARIABLES:
            problems.append(
                f"`{kind}.{name}` is set by review apps themselves (README, What your app is told); "
                "choose another name."
            )
        else:
            usable[name] = value
    return usable


def parse_env(data: object, problems: list[str]) -> tuple[tuple[str, str], ...]:
    """The spec's `env:`: NAME → a string, which may use the placeholders (filled at launch)."""
    env = []
    for name, value in _names("env", data, problems).items():
        if not isinstance(value, str):
            problems.append(f'`env.{name}:` {code(value)} must be a string: quote it (`{name}: "…"`).')
        elif len(value) > MAX_VALUE:
            problems.append(f"`env.{name}` is {len(value)} characters long; at most {MAX_VALUE} are allowed.")
        elif bad := [p for p in _PLACEHOLDER.findall(value) if p not in PLACEHOLDERS]:
            problems.append(
                f"`env.{name}` uses {code('${' + bad[0] + '}')}, which is not available; use one of "
                + ", ".join(f"`${{{p}}}`" for p in PLACEHOLDERS)
                + "."
            )
        else:
            env.append((name, value))
    return tuple(env)


def parse_secrets(data: object, env_names: set[str], problems: list[str]) -> tuple[tuple[str, str], ...]:
    """The spec's `secrets:`: NAME → an SSM parameter (name or ARN) or a Secrets Manager secret ARN.
    Only their shape here; what the project may name is ownership.secret_problem's, at launch."""
    secrets = []
    for name, value in _names("secrets", data, problems).items():
        if name in env_names:
            problems.append(f"`secrets.{name}` is also in `env:`; a variable comes from one of them only.")
        elif not isinstance(value, str) or not _REFERENCE.fullmatch(value) or len(value) > MAX_REFERENCE:
            problems.append(
                f"`secrets.{name}:` {code(value)} must be an SSM parameter name or ARN, or a Secrets Manager "
                "secret ARN (README, Settings and secrets)."
            )
        else:
            secrets.append((name, value))
    return tuple(secrets)

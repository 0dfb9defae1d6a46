"""What a project owns, as pure rules: base task definitions, roles and ECR repositories carry a
`review-apps:projects` tag that names the projects allowed to use them; images may also come
from the project's own GitLab registry or from a prefix the install shares with everyone.

References are compared parsed (registry host, repository path, by whole path segments), never as
string prefixes that `evil-acme` or `host.evil.com` could pass. A refusal reads the same whether
the thing belongs to another team or does not exist: it tells a stranger nothing about the account.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from review_apps.untrusted import code

PROJECTS_TAG = "review-apps:projects"
TASK_ROLE, EXECUTION_ROLE = "taskRoleArn", "executionRoleArn"
_IMAGE_MAX = 1024
# A registry host (DNS name, optional port) and repository path as Docker's reference grammar has them.
_HOST = re.compile(r"(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)(?:\.(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?))*(?::\d{1,5})?")
_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_TAG = re.compile(r"[\w][\w.-]{0,127}")
_DIGEST = re.compile(r"[a-z0-9]+(?:[+._-][a-z0-9]+)*:[0-9a-fA-F]{32,}")
_ECR_HOST = re.compile(r"(\d{12})\.dkr\.ecr(?:-fips)?\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?")


def names_project(value: object, project_id: int, project_path: str) -> bool:
    """Whether a `review-apps:projects` tag value lists the project: its path or numeric id, a group
    prefix ending in `/`, or `*` for every project of the install; space-separated."""
    if not isinstance(value, str):
        return False
    path = project_path.casefold()
    for entry in value.split():
        entry = entry.casefold()
        if entry == "*" or entry == str(project_id) or (path and entry == path):
            return True
        if path and entry.endswith("/") and len(entry) > 1 and path.startswith(entry):
            return True
    return False


@dataclass(frozen=True)
class ImageRef:
    host: str  # lower case; docker.io for Docker Hub
    path: str  # the repository path, e.g. library/nginx or group/project/web


def parse_image(reference: object) -> ImageRef | None:
    """The registry and repository of an image reference, or None if it is not one. `nginx:1` is
    docker.io/library/nginx; `acme/app` is docker.io/acme/app; tags and digests are dropped."""
    if not isinstance(reference, str) or not 0 < len(reference) <= _IMAGE_MAX or reference != reference.strip():
        return None
    name, at, digest = reference.partition("@")
    if at and not _DIGEST.fullmatch(digest):
        return None
    head, slash, last = name.rpartition("/")
    repository_last, colon, tag = last.partition(":")
    if colon and not _TAG.fullmatch(tag):
        return None
    name = f"{head}{slash}{repository_last}"
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        host, path = first.lower(), rest
    else:
        host, path = "docker.io", name if rest else f"library/{name}"
    if not _HOST.fullmatch(host) or not all(_COMPONENT.fullmatch(part) for part in path.split("/")):
        return None
    return ImageRef(host, path)


def _under(ref: ImageRef, prefix: ImageRef) -> bool:
    return ref.host == prefix.host and (ref.path == prefix.path or ref.path.startswith(prefix.path + "/"))


@dataclass(frozen=True)
class ImageRules:
    """Where images may come from besides the project's own tagged ECR repositories."""

    account: str = ""  # this account and Region: "this account's ECR"
    region: str = ""
    gitlab_registry_host: str = ""  # e.g. registry.gitlab.com; empty = not used
    shared_prefixes: tuple[str, ...] = ()  # e.g. public.ecr.aws/docker/library/postgres


def ecr_repository(ref: ImageRef, rules: ImageRules) -> str | None:
    """The repository name, when the image is in this account's ECR in this Region."""
    match = _ECR_HOST.fullmatch(ref.host)
    if match and rules.account and match.groups() == (rules.account, rules.region):
        return ref.path
    return None


def ecr_repository_arn(repository: str, rules: ImageRules) -> str:
    return f"arn:aws:ecr:{rules.region}:{rules.account}:repository/{repository}"


def role_name(arn: str) -> str:
    """IAM's RoleName for a role ARN (the last part of `role/path/name`)."""
    return arn.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class Needs:
    """The tags a task definition's ownership check must read."""

    roles: tuple[str, ...]
    repositories: tuple[str, ...]


def needs(register_kwargs: Mapping[str, Any], rules: ImageRules) -> Needs:
    roles = sorted({str(register_kwargs[f]) for f in (TASK_ROLE, EXECUTION_ROLE) if register_kwargs.get(f)})
    repositories = set()
    for container in register_kwargs.get("containerDefinitions") or []:
        ref = parse_image(container.get("image"))
        repository = ecr_repository(ref, rules) if ref else None
        if repository:
            repositories.add(repository)
    return Needs(tuple(roles), tuple(sorted(repositories)))


def problems(
    register_kwargs: Mapping[str, Any],
    project_id: int,
    project_path: str,
    rules: ImageRules,
    role_tags: Mapping[str, str | None],
    repository_tags: Mapping[str, str | None],
) -> list[str]:
    """What the project may not use in the task definition it would run. `role_tags` and
    `repository_tags` hold each needed role's and repository's tag value (None: no tag, or none)."""
    found: list[str] = []
    for field in (TASK_ROLE, EXECUTION_ROLE):
        role = register_kwargs.get(field)
        if role and not names_project(role_tags.get(str(role)), project_id, project_path):
            kind = "task role" if field == TASK_ROLE else "task execution role"
            found.append(
                f"The {kind} {code(role)} is not tagged `{PROJECTS_TAG}` for this project, so its review apps may "
                f"not use it. Ask the platform team to add this project's path or id to the role's "
                f'`{PROJECTS_TAG}` tag (README, Security: "Roles and images by tag").'
            )
    for container in register_kwargs.get("containerDefinitions") or []:
        image, name = container.get("image"), str(container.get("name"))
        if not image_allowed(image, project_id, project_path, rules, repository_tags):
            found.append(image_refusal(image, name, project_path, rules))
    return found


def image_allowed(
    image: object, project_id: int, project_path: str, rules: ImageRules, repository_tags: Mapping[str, str | None]
) -> bool:
    ref = parse_image(image)
    if ref is None:
        return False
    repository = ecr_repository(ref, rules)
    if repository is not None and names_project(repository_tags.get(repository), project_id, project_path):
        return True
    if rules.gitlab_registry_host and project_path:
        own = ImageRef(rules.gitlab_registry_host.lower(), project_path.lower())
        if _under(ref, own):
            return True
    for prefix in rules.shared_prefixes:
        parsed = parse_image(prefix)
        if parsed is not None and _under(ref, parsed):
            return True
    return False


def image_refusal(image: object, container: str, project_path: str, rules: ImageRules) -> str:
    sources = [
        f"an ECR repository of this account in {rules.region or 'this Region'} tagged `{PROJECTS_TAG}` for this project"
    ]
    if rules.gitlab_registry_host and project_path:
        sources.append(f"this project's GitLab registry ({code(rules.gitlab_registry_host + '/' + project_path)}/…)")
    if rules.shared_prefixes:
        sources.append("a shared image (" + ", ".join(code(p) for p in rules.shared_prefixes) + ")")
    return (
        f"Container {code(container)} would run image {code(image)}, which this project may not use: an image "
        f"must come from {', or '.join(sources)}. Push the image to one of them "
        '(README, Security: "Roles and images by tag").'
    )


def project_log_group(prefix: str, project_id: int, group: str) -> str:
    """`group` under `<prefix><project id>/`: a project's logs stay among its own groups."""
    own = f"{prefix}{project_id}/"
    if group.startswith(own):
        return group
    rest = group[len(prefix) :] if group.startswith(prefix) else group.lstrip("/")
    return own + rest


# --------------------------------------------------------------------------- secrets a project names

_SSM_ARN = re.compile(r"arn:aws[\w-]*:ssm:([a-z0-9-]+):(\d{12}):parameter(/[A-Za-z0-9_./-]+)")
_SSM_NAME = re.compile(r"/[A-Za-z0-9_./-]{1,2047}")
# A secret's ARN, and what ECS accepts after it: `:json-key:version-stage:version-id`.
_SECRET_ARN = re.compile(
    r"(arn:aws[\w-]*:secretsmanager:([a-z0-9-]+):(\d{12}):secret:[A-Za-z0-9/_+=.@-]+)(:[^:]*){0,3}"
)


@dataclass(frozen=True)
class SecretSource:
    kind: str  # "ssm" or "secretsmanager"
    name: str  # the SSM parameter's name (`/review-apps/14/db`), or the secret's ARN without its suffixes


def secret_source(reference: object, rules: ImageRules) -> SecretSource | None:
    """Where a secret reference points, if it is an SSM parameter (name or ARN) or a Secrets
    Manager secret (ARN) of this account and Region; None for anything else."""
    if not isinstance(reference, str):
        return None
    if _SSM_NAME.fullmatch(reference):
        return SecretSource("ssm", reference)
    if match := _SSM_ARN.fullmatch(reference):
        region, account, name = match.groups()
        return SecretSource("ssm", name) if (account, region) == (rules.account, rules.region) else None
    if match := _SECRET_ARN.fullmatch(reference):
        arn, region, account, _ = match.groups()
        return SecretSource("secretsmanager", arn) if (account, region) == (rules.account, rules.region) else None
    return None


def secrets_to_read(references: Iterable[str], rules: ImageRules) -> tuple[str, ...]:
    """The Secrets Manager secrets whose tags the ownership check must read."""
    sources = (secret_source(reference, rules) for reference in references)
    return tuple(sorted({s.name for s in sources if s is not None and s.kind == "secretsmanager"}))


def secret_problem(
    variable: str,
    reference: str,
    project_id: int,
    project_path: str,
    prefix: str,
    rules: ImageRules,
    secret_tags: Mapping[str, str | None],
) -> str | None:
    """Why the project may not name `reference` as secret `variable`, or None if it may: SSM
    parameters under `<prefix><project id>/`, or Secrets Manager secrets tagged for the project.
    One answer whether the thing is another project's or does not exist."""
    source = secret_source(reference, rules)
    own = f"{prefix}{project_id}/"
    if source is not None and source.kind == "ssm":
        segments = source.name[len(own) :].split("/")
        if source.name.startswith(own) and all(segment not in ("", ".", "..") for segment in segments):
            return None
    elif source is not None and names_project(secret_tags.get(source.name), project_id, project_path):
        return None
    return (
        f"Secret {code(variable)} names {code(reference)}, which this project may not use: a secret must be an SSM "
        f"parameter under {code(own)} (a name or this account's ARN in {rules.region or 'this Region'}), or a "
        f"Secrets Manager secret of this account tagged `{PROJECTS_TAG}` for this project. Put the value there "
        "(README, Settings and secrets)."
    )

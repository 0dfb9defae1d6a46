"""Who owns a role, an ECR repository or a secret: its `review-apps:projects` tag, read from IAM,
ECR and Secrets Manager.

Kept per container for a minute: a burst of launches reads each tag once, and a tag an operator
changes takes effect within that minute. A role or repository that does not exist has no tag,
exactly like one that is untagged, so the answer never tells a project which ones exist.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

from botocore.exceptions import ClientError

from review_apps.ownership import PROJECTS_TAG, ImageRules, ecr_repository_arn, role_name

CACHE_SECONDS = 60
_MISSING = {
    "NoSuchEntity",
    "NoSuchEntityException",
    "RepositoryNotFoundException",
    "InvalidParameterException",
    "ResourceNotFoundException",
}


class Owners:
    def __init__(
        self,
        iam: Callable[[], Any],
        ecr: Callable[[], Any],
        rules: ImageRules,
        secretsmanager: Callable[[], Any] | None = None,
    ) -> None:
        self._iam, self._ecr, self._rules = iam, ecr, rules
        self._secretsmanager = secretsmanager
        self._cache: dict[str, tuple[float, str | None]] = {}

    def _cached(self, key: str, read: Callable[[], str | None]) -> str | None:
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit and now - hit[0] < CACHE_SECONDS:
            return hit[1]
        value = read()
        self._cache[key] = (now, value)
        return value

    def role_tags(self, arns: Iterable[str]) -> dict[str, str | None]:
        return {arn: self._cached(f"role {arn}", partial(self._role_tag, arn)) for arn in arns}

    def repository_tags(self, repositories: Iterable[str]) -> dict[str, str | None]:
        return {name: self._cached(f"ecr {name}", partial(self._repository_tag, name)) for name in repositories}

    def secret_tags(self, arns: Iterable[str]) -> dict[str, str | None]:
        """Each Secrets Manager secret's tag, from DescribeSecret (which never returns the value)."""
        return {arn: self._cached(f"secret {arn}", partial(self._secret_tag, arn)) for arn in arns}

    def _secret_tag(self, arn: str) -> str | None:
        if self._secretsmanager is None:
            return None
        try:
            answer = self._secretsmanager().describe_secret(SecretId=arn)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _MISSING | {"AccessDeniedException"}:
                return None
            raise
        return _value(answer.get("Tags", []))

    def _role_tag(self, arn: str) -> str | None:
        try:
            pages = self._iam().get_paginator("list_role_tags").paginate(RoleName=role_name(arn))
            return _value(tag for page in pages for tag in page.get("Tags", []))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _MISSING:
                return None
            raise

    def _repository_tag(self, repository: str) -> str | None:
        try:
            answer = self._ecr().list_tags_for_resource(resourceArn=ecr_repository_arn(repository, self._rules))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _MISSING:
                return None
            raise
        return _value(answer.get("tags", []))


def _value(tags: Iterable[dict[str, str]]) -> str | None:
    return next((str(t.get("Value")) for t in tags if t.get("Key") == PROJECTS_TAG), None)

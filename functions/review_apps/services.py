"""The adapters a handler needs, built on first use and kept for the life of the container."""

from __future__ import annotations

import json
import logging
import time
from functools import cached_property
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities import parameters

from review_apps.adapters import aws
from review_apps.adapters.ecs import Ecs
from review_apps.adapters.elb import Elb
from review_apps.adapters.gitlab import GitLab
from review_apps.adapters.logs import Logs
from review_apps.adapters.metrics import Metrics
from review_apps.adapters.owners import Owners
from review_apps.adapters.scheduler import Scheduler
from review_apps.adapters.signin_store import SignInStore
from review_apps.adapters.store import RecordStore
from review_apps.lifecycle import Caps
from review_apps.settings import Settings

if TYPE_CHECKING:  # Authlib's client (~80 ms at cold start) and joserfc: only AuthFunction imports them
    from review_apps.adapters.signing_key import KmsSigningKey
    from review_apps.signin.gitlab_oauth import OAuthApp

SECRET_CACHE_SECONDS = 300  # a rotated secret takes effect within five minutes

# At DEBUG these libraries print what they carry: botocore the SSM and Secrets Manager answers,
# urllib3 the URLs (sign-in codes are in query strings), Authlib the tokens it issues. A DEBUG log
# level (POWERTOOLS_LOG_LEVEL, or Lambda's application log level) shows our lines, never those.
for _library in ("botocore", "urllib3", "authlib"):
    logging.getLogger(_library).setLevel(logging.INFO)


class Services:
    def __init__(self, settings: Settings, *, in_request_path: bool = False) -> None:
        self.settings = settings
        self._aws_config = aws.REQUEST_PATH if in_request_path else aws.BACKGROUND
        # GitLab's own timeout and retries, sized the same way.
        self._gitlab_timeout, self._gitlab_retries = (2.5, 1) if in_request_path else (5.0, 3)
        # time.monotonic() by which this invocation's GitLab calls must be over (see `budget`).
        self.deadline: float | None = None

    def budget(self, context: Any, reserve_seconds: float = 1.0) -> None:
        """Start an invocation: GitLab calls must end `reserve_seconds` before Lambda's timeout,
        so a slow GitLab gets a clear answer rather than a killed function."""
        remaining = context.get_remaining_time_in_millis() / 1000 if context is not None else None
        self.deadline = time.monotonic() + remaining - reserve_seconds if remaining else None
        for client in ("gitlab", "gitlab_reader"):
            if client in self.__dict__:  # built by an earlier invocation of this container
                self.__dict__[client].reset()

    @property
    def gitlab_unwell(self) -> str:
        """Why GitLab is left alone for the rest of this invocation ("" while it answers, or unused)."""
        return self.gitlab.unwell if "gitlab" in self.__dict__ else ""

    def seconds_left(self) -> float | None:
        """Seconds until this invocation's budget ends (None: no budget, e.g. a script)."""
        return None if self.deadline is None else self.deadline - time.monotonic()

    def aws(self, service: str) -> Any:
        return aws.client(service, self._aws_config)

    @cached_property
    def _parameters(self) -> parameters.SSMProvider:
        return parameters.SSMProvider(boto3_client=self.aws("ssm"))

    def secret(self, name: str) -> str:
        return str(self._parameters.get(name, decrypt=True, max_age=SECRET_CACHE_SECONDS))

    @cached_property
    def _secrets(self) -> parameters.SecretsProvider:
        return parameters.SecretsProvider(boto3_client=self.aws("secretsmanager"))

    def oidc_client(self) -> dict[str, str]:
        """The load balancer's client id and secret at the install's provider (generated at deploy)."""
        arn = self.settings.oidc_client_secret_arn
        raw = self._secrets.get(arn, max_age=SECRET_CACHE_SECONDS)
        data = json.loads(raw) if isinstance(raw, str) else raw
        if not (isinstance(data, dict) and data.get("client_id") and data.get("client_secret")):
            raise ValueError(f"secret {arn} must hold JSON with client_id and client_secret")
        return {"client_id": str(data["client_id"]), "client_secret": str(data["client_secret"])}

    def gitlab_oauth_app(self) -> OAuthApp:
        from review_apps.signin.gitlab_oauth import OAuthApp

        name = self.settings.gitlab_oauth_parameter
        return OAuthApp.parse(self.secret(name), name)

    @cached_property
    def signing_key(self) -> KmsSigningKey:
        """The ID tokens' key (its public half is read once per container)."""
        from review_apps.adapters.signing_key import KmsSigningKey

        return KmsSigningKey(lambda: self.aws("kms"), self.settings.oidc_signing_key_arn)

    @cached_property
    def signin_store(self) -> SignInStore:
        return SignInStore(self.settings.signin_table_name, self.aws("dynamodb"))

    @cached_property
    def store(self) -> RecordStore:
        caps = Caps(self.settings.max_running, self.settings.max_running_per_project)
        return RecordStore(self.settings.table_name, self.aws("dynamodb"), caps)

    @cached_property
    def ecs(self) -> Ecs:
        return Ecs(self.settings, self.aws("ecs"), lambda: self.aws("ec2"))

    @cached_property
    def elb(self) -> Elb:
        return Elb(self.settings, self.aws("elbv2"), self.oidc_client if self.settings.sign_in else None)

    @cached_property
    def owners(self) -> Owners:
        return Owners(
            lambda: self.aws("iam"),
            lambda: self.aws("ecr"),
            self.settings.image_rules,
            lambda: self.aws("secretsmanager"),
        )

    @cached_property
    def logs(self) -> Logs:
        return Logs(self.aws("logs"))

    @cached_property
    def metrics(self) -> Metrics:
        return Metrics(self.aws("cloudwatch"), self.settings.load_balancer_dimension)

    @cached_property
    def scheduler(self) -> Scheduler:
        return Scheduler(self.settings, self.aws("scheduler"))

    @cached_property
    def gitlab_reader(self) -> GitLab:
        """GitLab for membership look-ups (sign-in): the read-only token when the install has one
        (a `read_api` token: the internet-facing function never holds the bot's `api` token)."""
        parameter = self.settings.gitlab_read_token_parameter
        if not parameter:
            return self.gitlab
        return GitLab(
            self.settings.gitlab_url,
            self.secret(parameter),
            timeout=self._gitlab_timeout,
            retries=self._gitlab_retries,
            deadline=lambda: self.deadline,
        )

    @cached_property
    def gitlab(self) -> GitLab:
        return GitLab(
            self.settings.gitlab_url,
            self.secret(self.settings.gitlab_token_parameter),
            timeout=self._gitlab_timeout,
            retries=self._gitlab_retries,
            deadline=lambda: self.deadline,
        )

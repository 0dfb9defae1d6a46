"""The adapters a handler needs, built on first use and kept for the life of the container."""

from __future__ import annotations

from functools import cached_property
from typing import Any

from aws_lambda_powertools.utilities import parameters

from review_apps.adapters import aws
from review_apps.adapters.ecs import Ecs
from review_apps.adapters.elb import Elb
from review_apps.adapters.gitlab import GitLab
from review_apps.adapters.metrics import Metrics
from review_apps.adapters.scheduler import Scheduler
from review_apps.adapters.store import RecordStore
from review_apps.lifecycle import Caps
from review_apps.settings import Settings

SECRET_CACHE_SECONDS = 300  # a rotated secret takes effect within five minutes


class Services:
    def __init__(self, settings: Settings, *, in_request_path: bool = False) -> None:
        self.settings = settings
        self._aws_config = aws.REQUEST_PATH if in_request_path else aws.BACKGROUND
        # GitLab's own timeout and retries, sized the same way.
        self._gitlab_timeout, self._gitlab_retries = (2.5, 1) if in_request_path else (5.0, 3)

    def aws(self, service: str) -> Any:
        return aws.client(service, self._aws_config)

    @cached_property
    def _parameters(self) -> parameters.SSMProvider:
        return parameters.SSMProvider(boto3_client=self.aws("ssm"))

    def secret(self, name: str) -> str:
        return str(self._parameters.get(name, decrypt=True, max_age=SECRET_CACHE_SECONDS))

    @cached_property
    def store(self) -> RecordStore:
        caps = Caps(self.settings.max_running, self.settings.max_running_per_project)
        return RecordStore(self.settings.table_name, self.aws("dynamodb"), caps)

    @cached_property
    def ecs(self) -> Ecs:
        return Ecs(self.settings, self.aws("ecs"), lambda: self.aws("ec2"))

    @cached_property
    def elb(self) -> Elb:
        return Elb(self.settings, self.aws("elbv2"))

    @cached_property
    def metrics(self) -> Metrics:
        return Metrics(self.aws("cloudwatch"), self.settings.load_balancer_dimension)

    @cached_property
    def scheduler(self) -> Scheduler:
        return Scheduler(self.settings, self.aws("scheduler"))

    @cached_property
    def gitlab(self) -> GitLab:
        return GitLab(
            self.settings.gitlab_url,
            self.secret(self.settings.gitlab_token_parameter),
            timeout=self._gitlab_timeout,
            retries=self._gitlab_retries,
        )

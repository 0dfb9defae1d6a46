"""ECS and EC2 calls: task definitions, RunTask/StopTask, and the public IP behind an ENI."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from review_apps.events import group_for
from review_apps.model.record import Record
from review_apps.settings import Settings
from review_apps.taskdef import INSTALL_TAG, family_prefix

# Pauses before trying RunTask again after "no capacity": about a second in all, well inside
# the webhook's budget.
CAPACITY_RETRY_PAUSES = (0.3, 0.7)


def _retryable(failure: str) -> bool:
    text = failure.lower()
    return "capacity" in text or "throttl" in text or "rate exceeded" in text


class DefinitionRefused(Exception):
    """ECS would not register the derived task definition; str() is its reason."""


class TaskDefinitionNotFound(Exception):
    pass


@dataclass(frozen=True)
class RunResult:
    task_arn: str | None
    failures: tuple[str, ...]

    @property
    def passing(self) -> bool:
        """No task, for reasons that pass (no capacity, throttling): worth trying again later."""
        return self.task_arn is None and bool(self.failures) and all(map(_retryable, self.failures))


def _error_text(exc: ClientError) -> str:
    error = exc.response.get("Error", {})
    return f"{error.get('Code', 'Error')}: {error.get('Message', str(exc))}"


class Ecs:
    def __init__(self, settings: Settings, ecs: Any, ec2: Callable[[], Any]) -> None:
        self._settings = settings
        self._ecs = ecs
        self._ec2 = ec2  # made on first use: only installs with public IPs need it

    def describe_task_definition(self, name: str) -> tuple[dict[str, Any], list[dict[str, str]]]:
        """The revision and its tags (ownership is decided on the tags)."""
        try:
            answer = self._ecs.describe_task_definition(taskDefinition=name, include=["TAGS"])
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code in ("ClientException", "InvalidParameterException", "AccessDeniedException"):
                raise TaskDefinitionNotFound(_error_text(exc)) from None
            raise
        return answer["taskDefinition"], answer.get("tags") or []

    def register(self, kwargs: dict[str, Any]) -> str:
        try:
            return str(self._ecs.register_task_definition(**kwargs)["taskDefinition"]["taskDefinitionArn"])
        except ClientError as exc:
            # ECS checks what we can't (a container larger than its task, say): the project's to fix.
            if exc.response.get("Error", {}).get("Code") in ("ClientException", "InvalidParameterException"):
                raise DefinitionRefused(_error_text(exc)) from None
            raise

    def retire(self, task_definition_arn: str) -> None:
        """Deregister a derived revision and ask ECS to delete it, so nothing is left behind."""
        try:
            self._ecs.deregister_task_definition(taskDefinition=task_definition_arn)
            self._ecs.delete_task_definitions(taskDefinitions=[task_definition_arn])
        except ClientError as exc:
            # Already gone is the state we wanted; a deregistered revision that IAM won't let us
            # delete runs nothing and costs nothing.
            code = exc.response.get("Error", {}).get("Code")
            if code not in ("ClientException", "InvalidParameterException", "AccessDeniedException"):
                raise

    def derived_definitions(self, skip: Collection[str] = ()) -> list[str]:
        """Every ACTIVE revision in this install's families (and no one else's: the prefix
        carries the install's name), except in the families named in `skip`. ECS lists families
        with an ACTIVE revision in pages of 100, but revisions only family by family (its
        familyPrefix takes a whole family name): skipping the families of running apps keeps
        this to a call per family that has something to retire."""
        prefix = family_prefix(self._settings.install_id)
        arns: list[str] = []
        families = self._ecs.get_paginator("list_task_definition_families")
        for page in families.paginate(familyPrefix=prefix, status="ACTIVE"):
            for family in page["families"]:
                if not family.startswith(prefix) or family in skip:
                    continue
                revisions = self._ecs.get_paginator("list_task_definitions")
                for revision_page in revisions.paginate(familyPrefix=family, status="ACTIVE"):
                    arns.extend(revision_page["taskDefinitionArns"])
        return arns

    def review_app_tasks(self) -> list[dict[str, Any]]:
        """Tasks in the cluster that are meant to run and that this install started: another
        install's review apps, in the same cluster, are not ours to judge."""
        arns: list[str] = []
        for page in self._ecs.get_paginator("list_tasks").paginate(
            cluster=self._settings.cluster, desiredStatus="RUNNING"
        ):
            arns.extend(page["taskArns"])
        tasks: list[dict[str, Any]] = []
        for start in range(0, len(arns), 100):
            described = self._ecs.describe_tasks(
                cluster=self._settings.cluster, tasks=arns[start : start + 100], include=["TAGS"]
            )
            tasks.extend(t for t in described["tasks"] if self._ours(t))
        return tasks

    def _ours(self, task: dict[str, Any]) -> bool:
        tags = {t.get("key"): t.get("value") for t in task.get("tags") or []}
        return (task.get("group") or "").startswith("review-app:") and tags.get(
            INSTALL_TAG
        ) == self._settings.install_id

    def describe(self, task_arn: str) -> dict[str, Any] | None:
        """The task as ECS describes it, or None once ECS has forgotten it (about an hour after it stops)."""
        described = self._ecs.describe_tasks(cluster=self._settings.cluster, tasks=[task_arn])
        return described["tasks"][0] if described.get("tasks") else None

    def registered(self, task_definition_arn: str) -> dict[str, Any]:
        """A revision this install registered, as ECS describes it."""
        return dict(self._ecs.describe_task_definition(taskDefinition=task_definition_arn)["taskDefinition"])

    def tagged_for(self, task_arn: str, mr: tuple[int, int]) -> bool:
        """Whether the task carries this install's tag and the MR's (only RunTask of ours sets them)."""
        described = self._ecs.describe_tasks(cluster=self._settings.cluster, tasks=[task_arn], include=["TAGS"])
        tasks = described.get("tasks") or []
        tags = {t.get("key"): t.get("value") for t in (tasks[0].get("tags") or [])} if tasks else {}
        return tags.get(INSTALL_TAG) == self._settings.install_id and (
            tags.get("review-app:project"),
            tags.get("review-app:mr"),
        ) == (str(mr[0]), str(mr[1]))

    def run(self, record: Record, task_definition_arn: str) -> RunResult:
        """RunTask, tried again on the answers that say "try again" (throttling is retried by
        botocore; no capacity comes back as `failures` and is retried here)."""
        result = self._run_once(record, task_definition_arn, record.launch_id)
        for attempt, pause in enumerate(CAPACITY_RETRY_PAUSES, start=1):
            if result.task_arn or not any(_retryable(f) for f in result.failures):
                break
            time.sleep(pause)
            # A new token: ECS may answer a reused one with the same failure.
            result = self._run_once(record, task_definition_arn, f"{record.launch_id}-{attempt}")
        return result

    def _run_once(self, record: Record, task_definition_arn: str, client_token: str) -> RunResult:
        settings = self._settings
        # Spot goes through the cluster's FARGATE_SPOT capacity provider (exclusive with launchType).
        placement: dict[str, Any] = (
            {"capacityProviderStrategy": [{"capacityProvider": "FARGATE_SPOT", "weight": 1}]}
            if record.capacity == "spot"
            else {"launchType": "FARGATE"}
        )
        try:
            answer = self._ecs.run_task(
                cluster=settings.cluster,
                taskDefinition=task_definition_arn,
                **placement,
                count=1,
                group=group_for(record.project_id, record.mr_iid),
                startedBy=record.launch_id,
                clientToken=client_token,
                networkConfiguration={
                    "awsvpcConfiguration": {
                        "subnets": list(settings.subnets),
                        "securityGroups": list(settings.security_groups),
                        "assignPublicIp": "ENABLED" if settings.assign_public_ip else "DISABLED",
                    }
                },
                enableECSManagedTags=True,
                tags=[
                    {"key": INSTALL_TAG, "value": settings.install_id},
                    {"key": "review-app:project", "value": str(record.project_id)},
                    {"key": "review-app:mr", "value": str(record.mr_iid)},
                    {"key": "review-app:commit", "value": record.commit_sha},
                ],
            )
        except ClientError as exc:
            return RunResult(None, (_error_text(exc),))
        failures = tuple(
            f"{f.get('reason', 'unknown failure')}" + (f": {f['detail']}" if f.get("detail") else "")
            for f in answer.get("failures") or []
        )
        tasks = answer.get("tasks") or []
        return RunResult(tasks[0]["taskArn"] if tasks else None, failures)

    def stop(self, task_arn: str, reason: str) -> None:
        try:
            self._ecs.stop_task(cluster=self._settings.cluster, task=task_arn, reason=reason[:255])
        except ClientError as exc:
            # A task that is already gone needs no stopping.
            if exc.response.get("Error", {}).get("Code") not in ("InvalidParameterException", "ClientException"):
                raise

    def public_ip(self, eni_id: str) -> str | None:
        try:
            interfaces = self._ec2().describe_network_interfaces(NetworkInterfaceIds=[eni_id])["NetworkInterfaces"]
        except ClientError:
            return None
        association = (interfaces[0] if interfaces else {}).get("Association") or {}
        return association.get("PublicIp")

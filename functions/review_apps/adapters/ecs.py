"""ECS and EC2 calls: task definitions, RunTask/StopTask, and the public IP behind an ENI."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from review_apps.models import Record, group_for
from review_apps.settings import Settings


class TaskDefinitionNotFound(Exception):
    pass


@dataclass(frozen=True)
class RunResult:
    task_arn: str | None
    failures: tuple[str, ...]


def _error_text(exc: ClientError) -> str:
    error = exc.response.get("Error", {})
    return f"{error.get('Code', 'Error')}: {error.get('Message', str(exc))}"


class Ecs:
    def __init__(self, settings: Settings, ecs, ec2) -> None:
        self._settings = settings
        self._ecs = ecs
        self._ec2 = ec2

    def describe_task_definition(self, name: str) -> dict[str, Any]:
        try:
            return self._ecs.describe_task_definition(taskDefinition=name)["taskDefinition"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("ClientException", "InvalidParameterException"):
                raise TaskDefinitionNotFound(_error_text(exc)) from None
            raise

    def register(self, kwargs: dict[str, Any]) -> str:
        return self._ecs.register_task_definition(**kwargs)["taskDefinition"]["taskDefinitionArn"]

    def deregister(self, task_definition_arn: str) -> None:
        try:
            self._ecs.deregister_task_definition(taskDefinition=task_definition_arn)
        except ClientError as exc:
            # Already gone is the state we wanted.
            if exc.response.get("Error", {}).get("Code") not in ("ClientException", "InvalidParameterException"):
                raise

    def run(self, record: Record, task_definition_arn: str) -> RunResult:
        settings = self._settings
        try:
            answer = self._ecs.run_task(
                cluster=settings.cluster,
                taskDefinition=task_definition_arn,
                launchType="FARGATE",
                count=1,
                group=group_for(record.project_id, record.mr_iid),
                startedBy=record.launch_id,
                clientToken=record.launch_id,
                networkConfiguration={
                    "awsvpcConfiguration": {
                        "subnets": list(settings.subnets),
                        "securityGroups": list(settings.security_groups),
                        "assignPublicIp": "ENABLED" if settings.assign_public_ip else "DISABLED",
                    }
                },
                enableECSManagedTags=True,
                tags=[
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
            interfaces = self._ec2.describe_network_interfaces(NetworkInterfaceIds=[eni_id])["NetworkInterfaces"]
        except ClientError:
            return None
        association = (interfaces[0] if interfaces else {}).get("Association") or {}
        return association.get("PublicIp")

"""An app's deadline as an EventBridge Scheduler one-time schedule that calls ECS StopTask.

It needs none of our functions and nothing inside the image: at the deadline, Scheduler stops
the task itself and then deletes the schedule. One schedule per MR, named after it, in the
install's own schedule group; a new launch or an extension moves it, a stop deletes it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from review_apps.lifecycle import DEADLINE_STOP_REASON
from review_apps.settings import Settings

STOP_TASK_TARGET = "arn:aws:scheduler:::aws-sdk:ecs:stopTask"
# Scheduler refuses a moment in the past; a deadline that has just passed fires this soon.
EARLIEST_SECONDS = 60


def schedule_name(project_id: int, mr_iid: int) -> str:
    return f"mr-{project_id}-{mr_iid}"


def parse_schedule_name(name: str) -> tuple[int, int] | None:
    """(project id, MR iid) from a schedule's name; None for a name that is not one of ours."""
    parts = name.split("-")
    if len(parts) != 3 or parts[0] != "mr" or not (parts[1].isdigit() and parts[2].isdigit()):
        return None
    return int(parts[1]), int(parts[2])


def at_expression(epoch: int) -> str:
    return "at(" + datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S") + ")"


class Scheduler:
    def __init__(self, settings: Settings, client: Any) -> None:
        self._settings = settings
        self._client = client

    def set_deadline(
        self, project_id: int, mr_iid: int, task_arn: str, deadline: int, now: int, *, new: bool = True
    ) -> None:
        """Stop `task_arn` at `deadline`: creates the MR's schedule, or moves it. `new` says which
        is likelier (a first launch creates; a replacement, RUNNING or an extension moves), so
        the usual case is one call and the other still works."""
        settings = self._settings
        request = {
            "Name": schedule_name(project_id, mr_iid),
            "GroupName": settings.schedule_group,
            "ScheduleExpression": at_expression(max(deadline, now + EARLIEST_SECONDS)),
            "ScheduleExpressionTimezone": "UTC",
            "FlexibleTimeWindow": {"Mode": "OFF"},
            "ActionAfterCompletion": "DELETE",
            "Target": {
                "Arn": STOP_TASK_TARGET,
                "RoleArn": settings.scheduler_role_arn,
                "Input": json.dumps({"Cluster": settings.cluster, "Task": task_arn, "Reason": DEADLINE_STOP_REASON}),
                "RetryPolicy": {"MaximumEventAgeInSeconds": 3600, "MaximumRetryAttempts": 20},
            },
        }
        # An update replaces the whole schedule, so both calls take the same request.
        first, then, missing = (
            (self._client.create_schedule, self._client.update_schedule, "ConflictException")
            if new
            else (self._client.update_schedule, self._client.create_schedule, "ResourceNotFoundException")
        )
        try:
            first(**request)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != missing:
                raise
            then(**request)

    def all_names(self) -> list[str]:
        """Every schedule in the install's own group (no other install's)."""
        pages = self._client.get_paginator("list_schedules").paginate(GroupName=self._settings.schedule_group)
        return [schedule["Name"] for page in pages for schedule in page.get("Schedules", [])]

    def delete(self, name: str) -> None:
        try:
            self._client.delete_schedule(Name=name, GroupName=self._settings.schedule_group)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
                raise

    def clear(self, project_id: int, mr_iid: int) -> None:
        try:
            self._client.delete_schedule(
                Name=schedule_name(project_id, mr_iid), GroupName=self._settings.schedule_group
            )
        except ClientError as exc:
            # Already fired (and deleted itself) or never made: nothing is left to stop.
            if exc.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
                raise

"""Small builders for the core's inputs, so each test states only what it is about."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from review_apps.events import ContainerState, TaskEvent
from review_apps.model.record import MergeRequestRef, Record
from review_apps.model.values import Status
from review_apps.spec import Spec

SHA = "a" * 40
SHA2 = "b" * 40
TASK = "arn:aws:ecs:us-east-1:111122223333:task/review-apps/0123abcd"
NOW = 1_800_000_000

MR = MergeRequestRef(project_id=14, iid=3, source_project_id=14, source_branch="feature/x", project_path="g/p")


def spec(**changes) -> Spec:
    base = Spec(
        task_definition="shop-web",
        container=None,
        port=None,
        image=None,
        command=None,
        ttl_seconds=1800,
        ttl_capped_from=0,
        trigger="pipeline",
    )
    return dataclasses.replace(base, **changes)


def record(**changes) -> Record:
    base = Record(
        project_id=14,
        mr_iid=3,
        rev=2,
        status=Status.DEPLOYING,
        launch_id="launch-1",
        task_arn=TASK,
        task_definition_arn="arn:aws:ecs:us-east-1:111122223333:task-definition/review-app_review-apps-test_14-3:1",
        commit_sha=SHA,
        source_project_id=14,
        source_branch="feature/x",
        trigger="pipeline",
        container="web",
        port=8000,
        ttl_seconds=1800,
        launched_at=NOW,
        deadline=NOW + 1800,
    )
    return dataclasses.replace(base, **changes)


def task_event(
    last_status: str = "RUNNING",
    *,
    version: int = 5,
    task_arn: str = TASK,
    started_by: str = "launch-1",
    exit_code: int | None = None,
    stop_code: str | None = None,
    stopped_reason: str | None = None,
    container: str = "web",
    started: bool = True,
) -> TaskEvent:
    return TaskEvent(
        task_arn=task_arn,
        cluster_arn="arn:aws:ecs:us-east-1:111122223333:cluster/review-apps",
        group="review-app:14:3",
        started_by=started_by,
        last_status=last_status,
        desired_status="STOPPED" if last_status == "STOPPED" else "RUNNING",
        version=version,
        containers=(ContainerState(container, last_status, exit_code, None),),
        stop_code=stop_code,
        stopped_reason=stopped_reason,
        eni_id="eni-1",
        private_ip="10.0.0.7",
        started_at=datetime.fromtimestamp(NOW + 40, tz=UTC) if started else None,
        stopped_at=datetime.fromtimestamp(NOW + 1840, tz=UTC) if last_status == "STOPPED" else None,
    )


def placeholder_values(sha: str, branch: str, iid: int, path: str, host: str = "", project_id: int = 14) -> dict:
    """What `${…}` stand for at a launch of MR `iid` (app_env.placeholder_values, spelled out)."""
    from review_apps import app_env
    from review_apps.model.record import MergeRequestRef

    return app_env.placeholder_values(MergeRequestRef(project_id, iid, project_id, branch, path), sha, host)

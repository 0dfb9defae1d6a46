"""Real-shaped events for tests and the demo, built from the samples in events/.

GitLab payloads start from the documented samples and change only the fields a scenario
needs; ECS events are built from a task as the emulator describes it, in the shape of AWS's
"ECS Task State Change" sample. Starting from the samples keeps both honest: if a sample
drifts from what the handlers accept, every test that uses it fails.
"""

from __future__ import annotations

import copy
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

EVENTS_DIR = Path(__file__).resolve().parent.parent / "events"


def load_sample(name: str) -> dict[str, Any]:
    return json.loads((EVENTS_DIR / name).read_text())


def _sample_body(name: str) -> dict[str, Any]:
    return json.loads(load_sample(name)["body"])


def api_event(body: Any, gitlab_event: str, token: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    """An API Gateway HTTP API (payload v2) request carrying a GitLab webhook delivery."""
    event = load_sample("webhook_merge_request_open.json")
    delivery = str(uuid.uuid4())
    event["headers"] = {
        **event["headers"],
        "x-gitlab-event": gitlab_event,
        "x-gitlab-token": token,
        "x-gitlab-event-uuid": delivery,
        "idempotency-key": delivery,
        **(headers or {}),
    }
    event["headers"] = {k: v for k, v in event["headers"].items() if v is not None}
    event["body"] = body if isinstance(body, str) else json.dumps(body)
    return event


def alb_request(host: str, path: str = "/", method: str = "GET") -> dict[str, Any]:
    """What the load balancer sends its Lambda target for a visit to `host`."""
    event = load_sample("wake_sleeping_host.json")
    event["headers"] = {**event["headers"], "host": host}
    event["path"], event["httpMethod"] = path, method
    return event


def _mr_fields(attrs: dict, project_id: int, iid: int, sha: str, source_branch: str, source_project_id: int) -> None:
    attrs.update(
        {
            "iid": iid,
            "target_project_id": project_id,
            "source_project_id": source_project_id,
            "source_branch": source_branch,
        }
    )
    attrs["last_commit"] = {**attrs.get("last_commit", {}), "id": sha}


def merge_request_hook(
    action: str,
    *,
    project_id: int,
    iid: int,
    sha: str,
    source_branch: str,
    project_path: str,
    oldrev: str | None = None,
    state: str | None = None,
    source_project_id: int | None = None,
    updated_at: datetime | None = None,
    labels: list[str] | None = None,
    previous_labels: list[str] | None = None,
    draft: bool = False,
    was_draft: bool | None = None,
    reviewers: list[dict[str, Any]] | None = None,
    previous_reviewers: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """`changes` lists only what this update changed (and when, as GitLab does): labels when
    `previous_labels` is given, the draft flag when `was_draft` is, the reviewers when
    `previous_reviewers` is. `reviewers`: {id, username, state, re_requested} each (reviewer())."""
    body = _sample_body("webhook_merge_request_open.json")
    body["project"].update({"id": project_id, "path_with_namespace": project_path})
    attrs = body["object_attributes"]
    _mr_fields(attrs, project_id, iid, sha, source_branch, source_project_id or project_id)
    attrs["action"] = action
    attrs["state"] = state or {"close": "closed", "merge": "merged"}.get(action, "opened")
    attrs["updated_at"] = (updated_at or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    attrs["draft"] = attrs["work_in_progress"] = draft
    template = body["labels"][0] if body["labels"] else {"id": 1, "title": "x", "color": "#ffffff"}
    as_labels = lambda titles: [{**template, "id": 300 + i, "title": t} for i, t in enumerate(titles)]  # noqa: E731
    body["labels"] = attrs["labels"] = as_labels(labels or [])
    stamp = attrs["updated_at"].replace("T", " ").replace("Z", " UTC")
    changes: dict[str, Any] = {"updated_at": {"previous": stamp, "current": stamp}}
    if reviewers is not None:
        body["reviewers"] = reviewers
    if previous_reviewers is not None:
        changes["reviewers"] = {"previous": previous_reviewers, "current": reviewers or []}
    if previous_labels is not None:
        changes["labels"] = {"previous": as_labels(previous_labels), "current": as_labels(labels or [])}
    if was_draft is not None:
        changes["draft"] = {"previous": was_draft, "current": draft}
    body["changes"] = changes
    attrs.pop("oldrev", None)
    if oldrev:
        attrs["oldrev"] = oldrev
    return body


def reviewer(user_id: int, username: str, re_requested: bool = False, state: str = "unreviewed") -> dict[str, Any]:
    """One reviewer as a merge request hook lists it."""
    return {
        "id": user_id,
        "name": username.title(),
        "username": username,
        "avatar_url": "https://www.gravatar.com/avatar/0?s=80&d=identicon",
        "state": state,
        "re_requested": re_requested,
    }


def pipeline_hook(
    status: str,
    *,
    project_id: int,
    iid: int,
    sha: str,
    source_branch: str,
    project_path: str,
    pipeline_id: int = 31,
) -> dict[str, Any]:
    body = _sample_body("webhook_pipeline_success.json")
    body["project"].update({"id": project_id, "path_with_namespace": project_path})
    body["object_attributes"].update({"id": pipeline_id, "status": status, "sha": sha, "ref": source_branch})
    body["merge_request"].update(
        {"iid": iid, "source_branch": source_branch, "source_project_id": project_id, "target_project_id": project_id}
    )
    body["commit"]["id"] = sha
    return body


def note_hook(text: str, *, project_id: int, iid: int, sha: str, source_branch: str, project_path: str) -> dict:
    body = _sample_body("webhook_note.json")
    body["project_id"] = project_id
    body["project"].update({"id": project_id, "path_with_namespace": project_path})
    body["object_attributes"].update({"note": text, "project_id": project_id})
    _mr_fields(body["merge_request"], project_id, iid, sha, source_branch, project_id)
    return body


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return str(value)


def task_state_change(
    task: dict[str, Any],
    *,
    last_status: str,
    version: int,
    exit_codes: dict[str, int] | None = None,
    stop_code: str | None = None,
    stopped_reason: str | None = None,
    stopped_at: datetime | None = None,
    started_at: datetime | None = None,
    timeline: dict[str, datetime] | None = None,
) -> dict[str, Any]:
    """An EventBridge "ECS Task State Change" for `task` (a DescribeTasks entry)."""
    event = load_sample("task_running.json")
    event["id"] = str(uuid.uuid4())
    region = task["taskArn"].split(":")[3]
    event["region"] = region
    event["account"] = task["taskArn"].split(":")[4]
    event["time"] = _iso(datetime.now(UTC))
    event["resources"] = [task["taskArn"]]
    attachments = []
    for attachment in task.get("attachments") or []:
        attachments.append(
            {
                "id": attachment.get("id"),
                "type": "eni",
                "status": "ATTACHED" if last_status != "STOPPED" else "DELETED",
                "details": copy.deepcopy(attachment.get("details") or []),
            }
        )
    containers = []
    for container in task.get("containers") or []:
        entry = {
            "containerArn": container.get("containerArn"),
            "lastStatus": "STOPPED" if last_status == "STOPPED" else last_status,
            "name": container["name"],
            "image": container.get("image"),
            "taskArn": task["taskArn"],
            "cpu": str(container.get("cpu", "0")),
        }
        if exit_codes and container["name"] in exit_codes:
            entry["exitCode"] = exit_codes[container["name"]]
        containers.append(entry)
    now = _iso(datetime.now(UTC))
    detail = {
        "attachments": attachments,
        "availabilityZone": task.get("availabilityZone", f"{region}a"),
        "clusterArn": task["clusterArn"],
        "containers": containers,
        "createdAt": _iso(task.get("createdAt")) or now,
        "launchType": task.get("launchType", "FARGATE"),
        "cpu": str(task.get("cpu", "256")),
        "memory": str(task.get("memory", "512")),
        "desiredStatus": "STOPPED" if last_status == "STOPPED" else "RUNNING",
        "group": task.get("group"),
        "startedBy": task.get("startedBy"),
        "lastStatus": last_status,
        "overrides": task.get("overrides") or {"containerOverrides": []},
        "connectivity": "CONNECTED",
        "taskArn": task["taskArn"],
        "taskDefinitionArn": task["taskDefinitionArn"],
        "updatedAt": now,
        "version": version,
        "platformVersion": "1.4.0",
    }
    # A task that failed to start (e.g. its image could not be pulled) never has startedAt.
    if last_status == "RUNNING" or (last_status == "STOPPED" and stop_code != "TaskFailedToStart"):
        detail["startedAt"] = _iso(started_at or task.get("startedAt")) or now
    if last_status == "STOPPED":
        detail.update(
            {
                "stopCode": stop_code or "EssentialContainerExited",
                "stoppedAt": _iso(stopped_at) or now,
                "stoppingAt": _iso(stopped_at) or now,
                "stoppedReason": stopped_reason or "Essential container in task exited",
            }
        )
    # How the start went, as ECS says it (createdAt, pullStartedAt, pullStoppedAt, startedAt).
    detail.update({name: _iso(moment) for name, moment in (timeline or {}).items()})
    event["detail"] = detail
    return event

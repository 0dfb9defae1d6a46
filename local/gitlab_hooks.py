"""The GitLab stand-in's webhooks: what a project hook is sent when a merge request is opened,
pushed to or closed, or commented on, delivered after the API call that caused it answered
(GitLab queues deliveries too), one at a time, each POSTed with the hook's secret token."""

from __future__ import annotations

import queue
import threading
import uuid
from typing import Any

import requests

from local import events

_QUEUES: dict[int, queue.Queue] = {}
_LOCK = threading.Lock()


def merge_request_changed(state: Any, project: Any, mr: dict[str, Any], action: str, oldrev: str | None = None) -> None:
    body = events.merge_request_hook(
        action,
        project_id=project.id,
        iid=mr["iid"],
        sha=mr["sha"],
        source_branch=mr["source_branch"],
        project_path=project.path_with_namespace,
        oldrev=oldrev,
        labels=list(mr["labels"]),
        draft=mr["draft"],
    )
    body["object_attributes"]["title"] = mr["title"]
    body["user"] = {**body["user"], **_actor(state)}
    _send(state, project, "merge_requests_events", "Merge Request Hook", body)


def note_created(state: Any, project: Any, mr: dict[str, Any], note: dict[str, Any]) -> None:
    body = events.note_hook(
        note["body"],
        project_id=project.id,
        iid=mr["iid"],
        sha=mr["sha"],
        source_branch=mr["source_branch"],
        project_path=project.path_with_namespace,
    )
    body["object_attributes"].update({"id": note["id"], "author_id": note["author"]["id"]})
    body["user"] = {**body["user"], **_actor(state)}
    _send(state, project, "note_events", "Note Hook", body)


def _actor(state: Any) -> dict[str, Any]:
    author = state.author()
    return {"id": author["id"], "username": author["username"], "name": author["name"]}


def _send(state: Any, project: Any, trigger: str, event: str, body: dict[str, Any]) -> None:
    for hook in project.hooks:
        if hook.get(trigger):
            _queue(state).put((hook, event, body))


def _queue(state: Any) -> queue.Queue:
    with _LOCK:
        if id(state) not in _QUEUES:
            _QUEUES[id(state)] = queue.Queue()
            threading.Thread(target=_deliver, args=(state, _QUEUES[id(state)]), daemon=True).start()
        return _QUEUES[id(state)]


def _deliver(state: Any, pending: queue.Queue) -> None:
    while True:
        hook, event, body = pending.get()
        delivery = str(uuid.uuid4())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "GitLab/17.6.0",
            "X-Gitlab-Event": event,
            "X-Gitlab-Token": hook.get("token", ""),
            "X-Gitlab-Event-UUID": delivery,
            "X-Gitlab-Webhook-UUID": str(hook["id"]),
            "Idempotency-Key": delivery,
        }
        transport = state.hook_transport or requests
        try:
            answer = transport.post(
                hook["url"], json=body, headers=headers, timeout=10, verify=hook.get("enable_ssl_verification", True)
            )
            outcome: Any = answer.status_code
        except requests.RequestException as exc:
            outcome = type(exc).__name__
        state.hook_deliveries.append({"url": hook["url"], "event": event, "outcome": outcome})
        pending.task_done()


def settle(state: Any) -> None:
    """Wait until every delivery queued so far was made (tests)."""
    pending = _QUEUES.get(id(state))
    if pending is not None:
        pending.join()

"""Kept deliveries: what a webhook asked for, stored when GitLab or AWS failed while serving it,
so that the reconciler can carry it out once they answer (GitLab does not resend by itself, and
it turns a hook off after a few failures in a row).

One ask is kept per MR, the newest by when its event happened; older ones are superseded by it
(a newer push makes an older one moot, a merge makes a push moot). Pure: JSON in, ask out.
"""

from __future__ import annotations

import json
from typing import Any

from review_apps.lifecycle.routing import Command, ConsiderDeploy, StopApp
from review_apps.model.record import MergeRequestRef
from review_apps.model.values import Cause, StopReason

Ask = ConsiderDeploy | StopApp | Command
MAX_KEPT_BYTES = 4096  # far above any real ask; a record item must stay small


def keep(ask: Ask) -> str:
    """The ask as JSON for the record (labels and the like are re-read from GitLab when it runs)."""
    mr = ask.mr
    data: dict[str, Any] = {
        "mr": [mr.project_id, mr.iid, mr.source_project_id, mr.source_branch[:255], mr.project_path[:255]]
    }
    if isinstance(ask, ConsiderDeploy):
        data.update(
            kind="deploy",
            sha=ask.sha[:64],
            cause=str(ask.cause),
            updated_at=ask.updated_at,
            review=[name[:255] for name in ask.review_requested[:10]],
        )
    elif isinstance(ask, StopApp):
        data.update(kind="stop", reason=str(ask.reason), updated_at=ask.updated_at, by=ask.by[:255])
    else:
        data.update(
            kind="command", verb=ask.verb[:64], argument=ask.argument[:255], author_id=ask.author_id, by=ask.author
        )
    text = json.dumps(data, separators=(",", ":"))
    return text if len(text.encode()) <= MAX_KEPT_BYTES else ""


def _int(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise ValueError("not an integer")


def _str(value: Any) -> str:
    if isinstance(value, str):
        return value
    raise ValueError("not a string")


def unkeep(text: str) -> Ask | None:
    """The kept ask, or None for anything that is not one of ours (never raises)."""
    try:
        data = json.loads(text)
        project_id, iid, source_id, branch, path = data["mr"]
        mr = MergeRequestRef(_int(project_id), _int(iid), _int(source_id), _str(branch), _str(path))
        kind = data["kind"]
        if kind == "deploy":
            review = tuple(_str(name) for name in data.get("review") or [])
            sha, cause, updated_at = _str(data["sha"]), Cause(data["cause"]), _int(data["updated_at"])
            return ConsiderDeploy(mr, sha, cause, updated_at=updated_at, review_requested=review)
        if kind == "stop":
            return StopApp(mr, StopReason(data["reason"]), _int(data["updated_at"]), by=_str(data["by"]))
        if kind == "command":
            return Command(mr, _str(data["verb"]), _str(data["argument"]), _int(data["author_id"]), _str(data["by"]))
    except (ValueError, KeyError, TypeError):
        return None
    return None


def when(ask: Ask, received_at: int) -> int:
    """When the asked-for change happened, for keeping the newest: the MR event's own time where
    it says (pipelines and comments don't), else when we received it."""
    updated_at = getattr(ask, "updated_at", 0)
    return updated_at or received_at

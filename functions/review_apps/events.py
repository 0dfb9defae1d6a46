"""The shapes we accept from GitLab and ECS, parsed into typed events.

Parsing is lenient about fields we don't use (GitLab adds fields every release) and strict
about the ones we do: a missing or mistyped field raises BadEvent naming its path, which the
webhook turns into a 400 that tells the sender exactly what was wrong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from review_apps.model.record import MergeRequestRef


class BadEvent(ValueError):
    """The payload is not a usable GitLab/ECS event; the message names the field."""


_MISSING = object()


def _get(data: Any, path: str, kind: type | tuple[type, ...], default: Any = _MISSING) -> Any:
    node = data
    for key in path.split("."):
        if not isinstance(node, dict) or key not in node or node[key] is None:
            if default is not _MISSING:
                return default
            raise BadEvent(f"field '{path}' is missing")
        node = node[key]
    # bool is an int in Python; an id of `true` is as wrong as an id of "abc".
    if kind is int and isinstance(node, bool) or not isinstance(node, kind):
        expected = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise BadEvent(f"field '{path}' must be {expected}, got {type(node).__name__}")
    return node


@dataclass(frozen=True)
class MergeRequestEvent:
    mr: MergeRequestRef
    action: str
    state: str
    head_sha: str
    pushed: bool  # `oldrev` is only present when commits were pushed
    draft: bool
    labels: tuple[str, ...]
    updated_at: int = 0  # epoch seconds of the MR change this event reports; 0 when unknown
    labels_added: tuple[str, ...] = ()
    labels_removed: tuple[str, ...] = ()
    became_ready: bool = False  # draft → ready in this update
    # Usernames ("" where GitLab's is unusable) of reviewers asked to review in this update: added
    # to the reviewers, or asked again (`re_requested`). At most MAX_REVIEW_REQUESTS.
    review_requested: tuple[str, ...] = ()


@dataclass(frozen=True)
class PipelineEvent:
    mr: MergeRequestRef | None
    status: str
    sha: str
    source: str
    pipeline_id: int


@dataclass(frozen=True)
class NoteEvent:
    mr: MergeRequestRef | None
    noteable_type: str
    system: bool
    text: str
    author_id: int
    author: str = ""  # username, to address the answer


@dataclass(frozen=True)
class OtherEvent:
    """A well-formed GitLab event of a kind we don't act on (push, issue, tag…)."""

    object_kind: str


GitLabEvent = MergeRequestEvent | PipelineEvent | NoteEvent | OtherEvent


def _prefixed(mr: Any, prefix: str, project_path: str) -> MergeRequestRef:
    if not isinstance(mr, dict):
        raise BadEvent(f"field '{prefix}' must be an object")
    try:
        return MergeRequestRef(
            project_id=_get(mr, "target_project_id", int),
            iid=_get(mr, "iid", int),
            source_project_id=_get(mr, "source_project_id", int),
            source_branch=_get(mr, "source_branch", str),
            project_path=project_path,
        )
    except BadEvent as exc:
        raise BadEvent(str(exc).replace("field '", f"field '{prefix}.", 1)) from None


def _titles(labels: Any) -> tuple[str, ...]:
    if not isinstance(labels, list):
        return ()
    return tuple(label["title"] for label in labels if isinstance(label, dict) and isinstance(label.get("title"), str))


_USERNAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,254}$")


def _username(value: str) -> str:
    """A username in GitLab's own character set, or "": answers mention the author with `@`, so
    what reaches the note is at most one mention, never markup."""
    return value if _USERNAME.match(value) else ""


MAX_REVIEW_REQUESTS = 10
# What a hook that only re-requests a review changes besides the reviewers (nothing that matters).
_BOOKKEEPING_CHANGES = frozenset({"updated_at", "updated_by_id", "reviewers"})


def _people(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        return []
    return [p for p in value if isinstance(p, dict) and isinstance(p.get("id"), int) and not isinstance(p["id"], bool)]


def _review_requests(body: dict[str, Any], changes: dict[str, Any]) -> tuple[str, ...]:
    """Reviewers asked to review in this update: those added to `changes.reviewers.current`, and
    those asked again (`re_requested: true`). A reviewer carries `re_requested` in later hooks
    too, so it counts only in a hook whose changes are the reviewers alone: a label, title or
    description edit never reads as a review request."""
    if set(changes) - _BOOKKEEPING_CHANGES:
        return ()
    reviewers = changes.get("reviewers") if isinstance(changes.get("reviewers"), dict) else None
    if reviewers is not None:
        before = {p["id"] for p in _people(reviewers.get("previous"))}
        asked = [p for p in _people(reviewers.get("current")) if p["id"] not in before or p.get("re_requested") is True]
    else:
        asked = [p for p in _people(body.get("reviewers")) if p.get("re_requested") is True]
    names = [_username(p["username"]) if isinstance(p.get("username"), str) else "" for p in asked]
    return tuple(names[:MAX_REVIEW_REQUESTS])


def gitlab_time(value: Any) -> int:
    """Epoch seconds from GitLab's two webhook time formats ("2013-12-03T17:23:34Z" and
    "2013-12-03 17:23:34 UTC"); 0 when absent or unreadable, which disables ordering checks."""
    if not isinstance(value, str):
        return 0
    text = value.strip().replace(" UTC", "+00:00").replace("Z", "+00:00")
    try:
        moment = datetime.fromisoformat(text.replace(" ", "T", 1) if "T" not in text else text)
    except ValueError:
        return 0
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


def parse_gitlab_event(body: Any) -> GitLabEvent:
    """Turn a decoded webhook body into one of our event types, or raise BadEvent."""
    if not isinstance(body, dict):
        raise BadEvent("the body must be a JSON object (a GitLab webhook payload)")
    kind = _get(body, "object_kind", str)
    project_path = _get(body, "project.path_with_namespace", str, default="")
    if kind == "merge_request":
        attrs = _get(body, "object_attributes", dict)
        mr = _prefixed(attrs, "object_attributes", project_path)
        labels = _titles(_get(body, "labels", list, default=[]))
        changes: dict[str, Any] = body["changes"] if isinstance(body.get("changes"), dict) else {}
        label_change: dict[str, Any] = changes["labels"] if isinstance(changes.get("labels"), dict) else {}
        before = set(_titles(label_change.get("previous") or []))
        after = set(_titles(label_change.get("current") or [])) if label_change else set(labels)
        draft_change: dict[str, Any] = changes["draft"] if isinstance(changes.get("draft"), dict) else {}
        return MergeRequestEvent(
            mr=mr,
            action=_get(attrs, "action", str, default=""),
            state=_get(attrs, "state", str),
            head_sha=_get(body, "object_attributes.last_commit.id", str),
            pushed=bool(attrs.get("oldrev")),
            draft=bool(attrs.get("draft") or attrs.get("work_in_progress")),
            labels=labels,
            updated_at=gitlab_time(attrs.get("updated_at")),
            labels_added=tuple(sorted(after - before)) if label_change else (),
            labels_removed=tuple(sorted(before - after)) if label_change else (),
            became_ready=draft_change.get("previous") is True and draft_change.get("current") is False,
            review_requested=_review_requests(body, changes),
        )
    if kind == "pipeline":
        raw_mr = body.get("merge_request")
        return PipelineEvent(
            mr=_prefixed(raw_mr, "merge_request", project_path) if raw_mr else None,
            status=_get(body, "object_attributes.status", str),
            sha=_get(body, "object_attributes.sha", str),
            source=_get(body, "object_attributes.source", str, default=""),
            pipeline_id=_get(body, "object_attributes.id", int),
        )
    if kind == "note":
        noteable_type = _get(body, "object_attributes.noteable_type", str)
        raw_mr = body.get("merge_request") if noteable_type == "MergeRequest" else None
        if noteable_type == "MergeRequest" and not raw_mr:
            raise BadEvent("field 'merge_request' is missing on a comment on a merge request")
        return NoteEvent(
            mr=_prefixed(raw_mr, "merge_request", project_path) if raw_mr else None,
            noteable_type=noteable_type,
            system=bool(_get(body, "object_attributes.system", bool, default=False)),
            text=_get(body, "object_attributes.note", str),
            author_id=_get(body, "object_attributes.author_id", int),
            author=_username(_get(body, "user.username", str, default="")),
        )
    return OtherEvent(object_kind=kind)


_GROUP = re.compile(r"^review-app:(\d+):(\d+)$")


def group_for(project_id: int, mr_iid: int) -> str:
    return f"review-app:{project_id}:{mr_iid}"


def parse_group(group: str) -> tuple[int, int] | None:
    match = _GROUP.match(group or "")
    return (int(match.group(1)), int(match.group(2))) if match else None


@dataclass(frozen=True)
class ContainerState:
    name: str
    last_status: str
    exit_code: int | None
    reason: str | None


@dataclass(frozen=True)
class TaskEvent:
    task_arn: str
    cluster_arn: str
    group: str
    started_by: str
    last_status: str
    desired_status: str
    version: int
    containers: tuple[ContainerState, ...]
    stop_code: str | None
    stopped_reason: str | None
    eni_id: str | None
    private_ip: str | None
    started_at: datetime | None
    stopped_at: datetime | None
    # How the start went: created, then the image pulled, then started (RUNNING).
    created_at: datetime | None = None
    pull_started_at: datetime | None = None
    pull_stopped_at: datetime | None = None

    def container(self, name: str) -> ContainerState | None:
        return next((c for c in self.containers if c.name == name), None)


def _time(value: Any, path: str) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):  # DescribeTasks through boto3, rather than an event
        return value
    if not isinstance(value, str):
        raise BadEvent(f"field '{path}' must be an ISO timestamp")
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadEvent(f"field '{path}' must be an ISO timestamp, got {value!r}") from None


def task_from_description(task: dict[str, Any], fallback_version: int) -> TaskEvent:
    """A DescribeTasks entry read as the state-change event it would have produced."""
    detail = dict(task)
    detail.setdefault("version", fallback_version)
    return parse_task_event({"source": "aws.ecs", "detail-type": "ECS Task State Change", "detail": detail})


def parse_task_event(event: Any) -> TaskEvent:
    if not isinstance(event, dict):
        raise BadEvent("the event must be a JSON object")
    if event.get("source") != "aws.ecs" or event.get("detail-type") != "ECS Task State Change":
        raise BadEvent("not an 'ECS Task State Change' event from aws.ecs")
    detail = _get(event, "detail", dict)
    eni_id = private_ip = None
    for attachment in detail.get("attachments") or []:
        if isinstance(attachment, dict) and attachment.get("type") in ("eni", "ElasticNetworkInterface"):
            values = {d.get("name"): d.get("value") for d in attachment.get("details") or [] if isinstance(d, dict)}
            eni_id = values.get("networkInterfaceId")
            private_ip = values.get("privateIPv4Address")
    containers = []
    for index, raw in enumerate(_get(detail, "containers", list, default=[])):
        if not isinstance(raw, dict):
            raise BadEvent(f"field 'detail.containers[{index}]' must be an object")
        exit_code = raw.get("exitCode")
        containers.append(
            ContainerState(
                name=_get(raw, "name", str),
                last_status=_get(raw, "lastStatus", str, default=""),
                exit_code=exit_code if isinstance(exit_code, int) and not isinstance(exit_code, bool) else None,
                reason=raw.get("reason") if isinstance(raw.get("reason"), str) else None,
            )
        )
    return TaskEvent(
        task_arn=_get(detail, "taskArn", str),
        cluster_arn=_get(detail, "clusterArn", str),
        group=_get(detail, "group", str, default=""),
        started_by=_get(detail, "startedBy", str, default=""),
        last_status=_get(detail, "lastStatus", str),
        desired_status=_get(detail, "desiredStatus", str, default=""),
        version=_get(detail, "version", int),
        containers=tuple(containers),
        stop_code=detail.get("stopCode"),
        stopped_reason=detail.get("stoppedReason"),
        eni_id=eni_id,
        private_ip=private_ip,
        started_at=_time(detail.get("startedAt"), "detail.startedAt"),
        stopped_at=_time(detail.get("stoppedAt"), "detail.stoppedAt"),
        created_at=_time(detail.get("createdAt"), "detail.createdAt"),
        pull_started_at=_time(detail.get("pullStartedAt"), "detail.pullStartedAt"),
        pull_stopped_at=_time(detail.get("pullStoppedAt"), "detail.pullStoppedAt"),
    )

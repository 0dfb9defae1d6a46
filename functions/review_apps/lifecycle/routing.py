"""Routing: which ask a GitLab event makes (deploy, stop, a command), or why it is ignored.
No I/O: everything needed is in the event."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from review_apps.events import GitLabEvent, MergeRequestEvent, NoteEvent, OtherEvent, PipelineEvent
from review_apps.model.record import MergeRequestRef
from review_apps.model.values import Cause, StopReason


@dataclass(frozen=True)
class Ignore:
    reason: str


@dataclass(frozen=True)
class ConsiderDeploy:
    """The event may start or replace an app; the spec and the record decide (plan_deploy)."""

    mr: MergeRequestRef
    sha: str
    cause: Cause
    updated_at: int = 0  # MR events: when GitLab made the change they report
    labels: tuple[str, ...] = ()  # the MR's labels now
    draft: bool = False
    labels_added: tuple[str, ...] = ()
    labels_removed: tuple[str, ...] = ()
    became_ready: bool = False
    # A wake asked by a review request: who was asked (usernames; "" for an unusable one).
    review_requested: tuple[str, ...] = ()


@dataclass(frozen=True)
class StopApp:
    mr: MergeRequestRef
    reason: StopReason
    updated_at: int = 0
    by: str = ""  # who asked, for a /review-app stop
    detail: str = ""  # why, in words, when no one asked (a visit that could not wake the app)


COMMAND_PREFIX = "/review-app"


@dataclass(frozen=True)
class Command:
    """A `/review-app …` comment on a merge request."""

    mr: MergeRequestRef
    verb: str  # deploy | stop | status | help | extend, or what was typed
    argument: str
    author_id: int
    author: str


def parse_command(text: str) -> tuple[str, str] | None:
    """(verb, argument) when the comment's first line is a /review-app command."""
    first = text.strip().splitlines()[0].strip() if text.strip() else ""
    if first != COMMAND_PREFIX and not first.startswith(COMMAND_PREFIX + " "):
        return None
    words = first[len(COMMAND_PREFIX) :].split(maxsplit=1)
    return (words[0].lower() if words else "help", words[1].strip() if len(words) > 1 else "")


def admitted(mr: MergeRequestRef, allowlist: tuple[str, ...]) -> Ignore | None:
    """None when the MR's project may have review apps under the install's allowlist."""
    if not allowlist or str(mr.project_id) in allowlist or (mr.project_path and mr.project_path in allowlist):
        return None
    return Ignore(f"project {mr.project_path or mr.project_id} is not in this install's project allowlist")


def route_gitlab_event(event: GitLabEvent) -> Ignore | ConsiderDeploy | StopApp | Command:
    if isinstance(event, MergeRequestEvent):
        action = event.action

        def ask(cause: Cause, **edits: Any) -> ConsiderDeploy:
            return ConsiderDeploy(
                event.mr,
                event.head_sha,
                cause,
                updated_at=event.updated_at,
                labels=event.labels,
                draft=event.draft,
                **edits,
            )

        if action in ("open", "reopen"):
            return ask(Cause.OPENED if action == "open" else Cause.REOPENED)
        if action == "update":
            if event.pushed:
                return ask(Cause.PUSHED)
            if event.labels_added or event.labels_removed or event.became_ready:
                # Whether this matters depends on the spec's `label:` and `drafts:`.
                return ask(
                    Cause.EDITED,
                    labels_added=event.labels_added,
                    labels_removed=event.labels_removed,
                    became_ready=event.became_ready,
                )
            if event.review_requested:
                # Someone is about to look: a sleeping app wakes now, as for a visit (plan_deploy).
                return ask(Cause.WAKE, review_requested=event.review_requested)
            return Ignore("merge request edited without new commits: nothing to deploy")
        if action == "merge":
            return StopApp(event.mr, StopReason.MERGED, event.updated_at)
        if action == "close":
            return StopApp(event.mr, StopReason.CLOSED, event.updated_at)
        return Ignore(f"merge request action '{action or 'none'}' needs no review app change")
    if isinstance(event, PipelineEvent):
        if event.mr is None:
            return Ignore("pipeline is not for a merge request")
        if event.status != "success":
            return Ignore(f"pipeline status is '{event.status}'; review apps deploy when it succeeds")
        return ConsiderDeploy(event.mr, event.sha, Cause.PIPELINE)
    if isinstance(event, NoteEvent):
        if event.mr is None:
            return Ignore(f"comment on a {event.noteable_type}, not on a merge request")
        if event.system:
            return Ignore("system notes are not commands")
        parsed = parse_command(event.text)
        if parsed is None:
            return Ignore("comment is not a /review-app command")
        return Command(event.mr, parsed[0], parsed[1], event.author_id, event.author)
    assert isinstance(event, OtherEvent)
    return Ignore(f"'{event.object_kind}' events are not used by review apps")

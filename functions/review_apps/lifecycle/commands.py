"""`/review-app …` comments: who may steer, and what each command does to the record."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from gitlab.const import AccessLevel

from review_apps.durations import DurationError, format_duration, format_utc, parse_duration
from review_apps.lifecycle.queue import place_words
from review_apps.lifecycle.routing import Command, ConsiderDeploy, StopApp
from review_apps.lifecycle.transitions import base_record
from review_apps.model.record import MergeRequestRef, Record
from review_apps.model.values import Cause, Status, StopReason
from review_apps.untrusted import code

HELP = (
    "`/review-app deploy` launches (or relaunches) the app for the MR's latest commit; "
    "`/review-app stop` stops it; `/review-app extend 1h` lets it live longer (up to the install's maximum time "
    "to live); `/review-app status` says where it is; `/review-app help` shows this. "
    "Members with Developer access or more can use them."
)


@dataclass(frozen=True)
class Extend:
    mr: MergeRequestRef
    seconds: int
    by: str


def answer_command(
    command: Command, access_level: int | None, record: Record | None
) -> str | StopApp | ConsiderDeploy | Extend:
    """What a command does: a text for the note, a stop, a deploy to plan, or an extension."""
    who = f"@{command.author}" if command.author else "You"
    if access_level is None or access_level < AccessLevel.DEVELOPER:
        return f"{who}, sorry: only members of this project with Developer access or more can steer its review app."
    if command.verb == "stop":
        # No event time: a person's command is never "older" than an MR event.
        return StopApp(command.mr, StopReason.COMMAND, by=command.author)
    if command.verb == "deploy":
        return ConsiderDeploy(command.mr, "", Cause.COMMAND)
    if command.verb == "status":
        if record is None or not record.status:
            return f"{who}: nothing has been deployed for this merge request yet."
        summary = {
            Status.LIVE: f"live at {record.url} until {format_utc(record.deadline)}",
            Status.DEPLOYING: "deploying",
            Status.STOPPING: "stopping",
            Status.QUEUED: f"queued ({place_words(record.queue_place)} in line)",
        }.get(record.status, record.status)
        return f"{who}: the review app for commit `{record.commit_sha[:8]}` is {summary}."
    if command.verb == "extend":
        try:
            seconds = parse_duration(command.argument)
        except DurationError:
            return f"{who}: say how much longer, e.g. `/review-app extend 1h` or `/review-app extend 30m`."
        return Extend(command.mr, seconds, command.author)
    prefix = "" if command.verb == "help" else f"{code(command.verb)} is not a review-app command. "
    return f"{who}: {prefix}{HELP}"


def extended(record: Record | None, ask: Extend, max_ttl: int) -> Record | str:
    """The record with a later deadline, or why it cannot be extended.

    The container's own `timeout` is set to the install's maximum TTL (a running timer cannot
    be changed), so the real end is `deadline`, which the reconciler enforces every minute;
    an extension moves the deadline, never past the maximum."""
    who = f"@{ask.by}" if ask.by else "You"
    if record is not None and record.queued:
        return f"{who}: the app has not started yet (it is queued); it gets its full time to live once it starts."
    if record is None or record.status not in (Status.DEPLOYING, Status.LIVE):
        return f"{who}: there is no running review app to extend. `/review-app deploy` starts one."
    start = record.live_at or record.launched_at
    ttl = min(record.ttl_seconds + ask.seconds, max_ttl)
    added = ttl - record.ttl_seconds
    if added <= 0:
        return (
            f"{who}: the app already has this install's maximum time to live ({format_duration(max_ttl)}); "
            f"it stops at {format_utc(record.deadline)}."
        )
    answer = f"{who}: extended by {format_duration(added)}; the app now stops at {format_utc(start + ttl)}."
    if added < ask.seconds:
        answer += f" (Capped: this install allows at most {format_duration(max_ttl)} in all.)"
    return dataclasses.replace(
        record,
        ttl_seconds=ttl,
        extended_seconds=record.extended_seconds + added,
        deadline=start + ttl,
        last_command=answer,
    )


def with_answer(record: Record | None, mr: MergeRequestRef, answer: str) -> Record:
    return dataclasses.replace(base_record(record, mr), last_command=answer)

"""The fixed value sets of a review app's life. StrEnums: they compare equal to, and are stored
in DynamoDB as, the plain strings they always were."""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    """Where an MR's review app is. DEPLOYING/LIVE/STOPPING have a task that may be running."""

    NONE = ""  # a record that only carries a command's answer
    DEPLOYING = "deploying"
    LIVE = "live"
    STOPPING = "stopping"
    STOPPED = "stopped"
    FAILED = "failed"  # never started: RunTask refused, or the task failed before RUNNING
    REJECTED = "rejected"  # nothing launched: the spec or the task definition is unusable
    QUEUED = "queued"  # waiting for a running slot under the install's caps; no task yet
    ASLEEP = "asleep"  # stopped after nobody visited; its address stays, and a visit wakes it


ACTIVE = frozenset({Status.DEPLOYING, Status.LIVE, Status.STOPPING})


class StopReason(StrEnum):
    NONE = ""
    TTL = "ttl"
    REPLACED = "replaced"
    MERGED = "merged"
    CLOSED = "closed"
    CRASHED = "crashed"
    FAILED_TO_START = "failed_to_start"
    SPOT = "spot"
    STOPPED_OUTSIDE = "stopped_outside"
    UNLABELED = "unlabeled"
    COMMAND = "command"
    ASLEEP = "asleep"  # nobody visited it for its `sleep_after`
    CANNOT_WAKE = "cannot_wake"  # a visit found it may not run any more (no spec, project not allowed)
    UNKNOWN = "unknown"


# Stops we asked for ourselves: the app did nothing wrong.
REQUESTED_STOPS = frozenset(
    {
        StopReason.REPLACED,
        StopReason.MERGED,
        StopReason.CLOSED,
        StopReason.UNLABELED,
        StopReason.COMMAND,
        StopReason.ASLEEP,
        StopReason.CANNOT_WAKE,
    }
)


class Cause(StrEnum):
    """Why a deploy is being considered."""

    OPENED = "opened"  # a brand-new MR: it can have no review-app note yet
    REOPENED = "reopened"
    PUSHED = "pushed"
    PIPELINE = "pipeline"
    EDITED = "edited"  # labels or draft status changed, no new commits
    COMMAND = "command"  # `/review-app deploy`
    QUEUE = "queue"  # a queued MR whose slot freed
    WAKE = "wake"  # a visit to a sleeping app's address


# Causes that mean someone asked for the app (or it already passed the gates when it was queued).
EXPLICIT_CAUSES = frozenset({Cause.COMMAND, Cause.QUEUE, Cause.WAKE})


class Slot(StrEnum):
    """What a record write does to the running slots under caps."""

    NONE = ""
    TAKE = "take"  # a new app: only if every scope is below its cap
    KEEP = "keep"  # a new commit for an app that runs already: it keeps its slot
    RELEASE = "release"

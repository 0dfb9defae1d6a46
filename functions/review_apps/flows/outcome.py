"""What a flow did, as data. Behaviour keys on `result`, never on the words of `message`."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Result(StrEnum):
    IGNORED = "ignored"  # nothing to do; the message says why
    DEPLOYING = "deploying"  # a task was started
    QUEUED = "queued"  # every slot is taken: the MR waits
    POSTPONED = "postponed"  # AWS could not start the task now (capacity, throttling): the MR waits to retry
    KEPT = "kept"  # GitLab or AWS failed: the ask is kept, and the reconciler carries it out
    REJECTED = "rejected"  # nothing launched: the problems are on the MR
    FAILED = "failed"  # RunTask started nothing: the reason is on the MR
    SUPERSEDED = "superseded"  # a newer event for the MR took over meanwhile
    STOPPING = "stopping"
    LEFT_QUEUE = "left_queue"
    ANSWERED = "answered"  # a command's answer is on the MR
    IN_PROGRESS = "in_progress"  # the same delivery is being handled elsewhere
    UPDATED = "updated"  # the MR now shows the task's new state
    ENDED = "ended"  # a sleeping app was ended (merged, closed, stopped): its address is gone


@dataclass(frozen=True)
class Outcome:
    result: Result
    message: str
    details: dict[str, Any] = field(default_factory=dict)  # e.g. task, place, problems

    @classmethod
    def ignored(cls, reason: str) -> Outcome:
        return cls(Result.IGNORED, f"ignored: {reason}")

    def as_dict(self) -> dict[str, Any]:
        """JSON for the idempotency store, which replays a delivery's first answer."""
        return {"result": str(self.result), "message": self.message, "details": self.details}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Outcome:
        return cls(Result(data["result"]), data["message"], dict(data.get("details") or {}))

"""Caps on running apps, and the queue of MRs waiting for a slot."""

from __future__ import annotations

from dataclasses import dataclass

from review_apps.model.record import Record
from review_apps.model.values import Slot, Status


@dataclass(frozen=True)
class Caps:
    """The most review apps running at once; 0 means no cap."""

    overall: int = 0
    per_project: int = 0


# Places beyond this are not told apart: with hundreds waiting, every start would otherwise edit
# every waiting MR's note (hundreds of GitLab calls per start, and GitLab's rate limit).
PLACES_SHOWN = 20


def shown_place(place: int) -> int:
    """The place a waiting MR's record keeps: exact up to PLACES_SHOWN, one value beyond."""
    return min(place, PLACES_SHOWN + 1)


def place_words(place: int) -> str:
    """`number 3` or `behind more than 20 others`, for a record's (shown) place."""
    if place > PLACES_SHOWN:
        return f"behind more than {PLACES_SHOWN} others"
    return f"number {place or 1}"


def slot_scopes(caps: Caps, project_id: int) -> tuple[tuple[str, int], ...]:
    """(scope, cap) pairs an app of this project counts against."""
    scopes = []
    if caps.overall:
        scopes.append(("all", caps.overall))
    if caps.per_project:
        scopes.append((f"project/{project_id}", caps.per_project))
    return tuple(scopes)


def cap_detail(scope: str, cap: int) -> str:
    """Why an app waits, for the note."""
    apps = "review app" if cap == 1 else "review apps"
    if scope == "all":
        return f"this install runs at most {cap} {apps} at once"
    return f"this project may run at most {cap} {apps} at once"


def slot_change(before: Record | None, after: Record) -> str:
    """What a write of `after` (over `before`) does to the running slots."""
    was_running = before is not None and before.active
    if after.status == Status.DEPLOYING and (before is None or before.launch_id != after.launch_id):
        return Slot.KEEP if was_running else Slot.TAKE
    if was_running and not after.active:
        return Slot.RELEASE
    return Slot.NONE


def queue_order(records: list[Record]) -> list[Record]:
    """Waiting records, first come first served."""
    return sorted((r for r in records if r.queued), key=lambda r: (r.queued_at, r.project_id, r.mr_iid))


WAITS_ITS_TURN = "others were waiting for a slot before this visit"


def wake_waits(waiting: list[Record], key: str) -> bool:
    """A visit that wakes an app takes its turn: with anyone else in the queue it goes to the end,
    rather than into a slot that frees at that moment (a visit costs nothing to make; the MRs in
    the queue asked first)."""
    return any(record.key != key for record in waiting)


def startable(queue: list[Record], now: int) -> list[Record]:
    """The head of `queue` (in order) up to the first MR still waiting out a retry's backoff: AWS
    lacked capacity for it a moment ago, and those behind it must not take its place meanwhile."""
    for index, record in enumerate(queue):
        if record.retry_at > now:
            return queue[:index]
    return queue

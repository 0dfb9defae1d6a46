"""The one loop around read → decide → conditional write: a step that loses a race to another
writer (Conflict) looks again, from a fresh read, a bounded number of times."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from review_apps.adapters.store import Conflict

ATTEMPTS = 3
T = TypeVar("T")


def until_written(step: Callable[[], T], what: str = "the merge request") -> T:
    """`step` reads, decides and writes; it raises Conflict when its write lost."""
    for _ in range(ATTEMPTS):
        try:
            return step()
        except Conflict:
            continue
    raise Conflict(f"{what} changed repeatedly while we handled it")

"""What is wrong with what a project asked for: one type for the spec, compose files and the
task definition, each problem phrased as "what is wrong, and how to fix it" for the MR."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problems:
    problems: tuple[str, ...]
    notices: tuple[str, ...] = ()  # worth knowing, not blocking: shown with the problems

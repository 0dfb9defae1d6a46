"""What `sam delete` must not leave behind, removed before the stack's own resources go: this
install's running tasks (stopped first: they cost money), its deadline schedules, its listener
rules and target groups, and its task-definition revisions. Only what carries this install's tag
or lives in its own group or families is touched. Each step stops when the time CloudFormation
allows runs short, so the answer is always sent; what is left is counted and named."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from review_apps.services import Services

STOP_REASON = "Review app stopped: its install is being deleted (sam delete)"


@dataclass
class CleanupReport:
    done: dict[str, int] = field(default_factory=dict)
    left: dict[str, list[str]] = field(default_factory=dict)

    @property
    def tasks_left(self) -> bool:
        return bool(self.left.get("tasks"))

    def summary(self) -> str:
        done = ", ".join(f"{count} {what}" for what, count in self.done.items()) or "nothing to remove"
        if not self.left:
            return f"Removed {done}."
        left = "; ".join(
            f"{what}: {', '.join(items[:5])}{' …' if len(items) > 5 else ''}" for what, items in self.left.items()
        )
        return f"Removed {done}. Left: {left}"


def clean_up(services: Services, logger: Any, time_left: Callable[[], float]) -> CleanupReport:
    """`time_left()`: seconds until the answer must be sent (work stops a little before)."""
    report = CleanupReport()
    steps: list[tuple[str, Callable[[], list[str]], Callable[[str], None]]] = [
        (
            "tasks",
            lambda: [t["taskArn"] for t in services.ecs.review_app_tasks()],
            lambda arn: services.ecs.stop(arn, STOP_REASON),
        ),
        ("schedules", services.scheduler.all_names, services.scheduler.delete),
    ]
    if services.settings.address_mode:
        # Rules first, found by tag (a sleeping app's forwards to the wake function), then groups.
        steps.append(("listener rules", services.elb.own_rules, services.elb.delete_rule))
        steps.append(
            (
                "target groups",
                lambda: [r.target_group_arn for r in services.elb.routes() if r.target_group_arn],
                services.elb.remove_route,
            )
        )
    steps.append(("task definitions", services.ecs.derived_definitions, services.ecs.retire))
    for what, find, remove in steps:
        try:
            found = find()  # listed even when time is short: what is left gets named
        except Exception as exc:  # a step that can't even list what it has leaves it, named
            report.left[what] = [f"could not list them ({type(exc).__name__})"]
            continue
        for item in found:
            if time_left() <= 0:
                report.left.setdefault(what, []).append(item)
                continue
            try:
                remove(item)
                report.done[what] = report.done.get(what, 0) + 1
            except Exception as exc:
                logger.warning("could not remove", extra={"what": what, "item": item, "error": str(exc)})
                report.left.setdefault(what, []).append(item)
    return report

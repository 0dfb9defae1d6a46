"""What AWS does by itself between the functions' calls, for a local install that has to run on
its own (`make smoke-local`): EventBridge's rule on "ECS Task State Change" invoking
TaskEventsFunction as tasks start and stop, the scheduled rule invoking ReconcileFunction (every
few seconds here rather than every minute), and EventBridge Scheduler carrying out a deadline's
StopTask once it is due. Each function runs one invocation at a time, as a reserved concurrency
of one would; different functions run side by side, as in AWS.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Any

from local import events
from local.lambda_runtime import LambdaContext
from local.world import CLUSTER, World

_LOCKS: dict[str, threading.Lock] = {}


def one_at_a_time(function: str, handler: Any) -> Any:
    lock = _LOCKS.setdefault(function, threading.Lock())

    def invoke(event: dict, context: Any) -> Any:
        with lock:
            return handler(event, context)

    return invoke


class Cloud:
    def __init__(self, world: World, reconcile_every: float = 5.0, poll: float = 0.25) -> None:
        self.world, self.reconcile_every, self.poll = world, reconcile_every, poll
        self._announced: dict[str, str] = {}  # task ARN -> the last status an event was sent for
        self._versions: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="local-cloud")
        self.errors: list[str] = []
        world.webhook_handler = one_at_a_time("WebhookFunction", world.webhook_handler)
        self._task_events = one_at_a_time("TaskEventsFunction", world.task_events_handler)
        self._reconcile = one_at_a_time("ReconcileFunction", world.reconcile_handler)

    def start(self) -> Cloud:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        last_reconcile = time.monotonic()
        while not self._stop.wait(self.poll):
            for step in (self._task_state_changes, self._deadlines):
                try:
                    step()
                except Exception as exc:  # keep the cloud going; the caller reads what went wrong
                    self.errors.append(f"{step.__name__}: {exc!r}")
            if time.monotonic() - last_reconcile >= self.reconcile_every:
                last_reconcile = time.monotonic()
                try:
                    self._reconcile(
                        {"source": "aws.events", "detail-type": "Scheduled Event"},
                        LambdaContext(function_name="ReconcileFunction"),
                    )
                except Exception as exc:
                    self.errors.append(f"reconcile: {exc!r}")

    def _task_state_changes(self) -> None:
        ecs = self.world.ecs
        arns = [
            arn
            for status in ("RUNNING", "STOPPED")
            for arn in ecs.list_tasks(cluster=CLUSTER, desiredStatus=status)["taskArns"]
        ]
        fresh = [arn for arn in arns if self._announced.get(arn) != "STOPPED"]
        for start in range(0, len(fresh), 100):
            for task in ecs.describe_tasks(cluster=CLUSTER, tasks=fresh[start : start + 100])["tasks"]:
                status = task["lastStatus"]
                if self._announced.get(task["taskArn"]) == status:
                    continue
                version = self._versions.get(task["taskArn"], 1) + 1
                self._versions[task["taskArn"]] = version
                stopped = {}
                if status == "STOPPED":  # the install stopped it (StopTask): SIGTERM ends the app
                    stopped = {
                        "exit_codes": {c["name"]: 143 for c in task.get("containers", [])},
                        "stop_code": "UserInitiated",
                        "stopped_reason": task.get("stoppedReason") or "Task stopped by user",
                    }
                event = events.task_state_change(task, last_status=status, version=version, **stopped)
                self._task_events(event, LambdaContext(function_name="TaskEventsFunction"))
                self._announced[task["taskArn"]] = status

    def _deadlines(self) -> None:
        now = datetime.now(UTC)
        for name, schedule in self.world.schedules().items():
            expression = schedule.get("ScheduleExpression", "")
            if expression.startswith("at(") and datetime.fromisoformat(expression[3:-1]).replace(tzinfo=UTC) <= now:
                self.world.fire_schedule(name)

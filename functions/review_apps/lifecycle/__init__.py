"""Every rule of a review app's life, as pure functions, by concern:

- routing: which ask a GitLab event makes (deploy, stop, command), or why it is ignored;
- commands: `/review-app …` comments;
- planning: ask + spec + record → launch, stop, reject or ignore;
- transitions: the record after each step (claim, launch, stop, vanish…);
- queue: caps on running apps and the queue;
- task_events: what a RUNNING or STOPPED task means;
- reconcile: what the every-minute backstop heals;
- addresses: address mode's hosts, route names, rule priorities and route sweep;
- sleep: which idle apps sleep, and what a visit to a sleeping one finds;
- kept: a delivery kept when GitLab or AWS failed, for the reconciler to carry out.

Nothing here reads the clock, the network or the environment. The names below are the core's
public surface, so callers write `lifecycle.plan_deploy`, wherever it lives.
"""

from review_apps.lifecycle.commands import HELP, Extend, answer_command, extended, with_answer
from review_apps.lifecycle.planning import FORK_PROBLEM, Compute, Launch, Reject, may_wake, plan_deploy, plan_stop
from review_apps.lifecycle.queue import (
    WAITS_ITS_TURN,
    Caps,
    cap_detail,
    queue_order,
    shown_place,
    slot_change,
    slot_scopes,
    startable,
    wake_waits,
)
from review_apps.lifecycle.routing import (
    COMMAND_PREFIX,
    Command,
    ConsiderDeploy,
    Ignore,
    StopApp,
    admitted,
    parse_command,
    route_gitlab_event,
)
from review_apps.lifecycle.task_events import (
    DEADLINE_STOP_REASON,
    KILLED_EXIT_CODE,
    TTL_EXIT_CODE,
    PhaseChanged,
    Stopped,
    WentLive,
    app_url,
    explain_stop,
    needs_tag_check,
    on_task_event,
    starting,
    stopped,
    went_live,
)
from review_apps.lifecycle.transitions import (
    FINISHED_RECORD_DAYS,
    base_record,
    claim_launch,
    expiry,
    launch_failed,
    launch_id,
    launched,
    left_queue,
    queued,
    rejected,
    start_postponed,
    stop_requested,
    vanished,
)
from review_apps.model.values import Cause, Slot, Status, StopReason

__all__ = [
    "COMMAND_PREFIX",
    "DEADLINE_STOP_REASON",
    "FINISHED_RECORD_DAYS",
    "FORK_PROBLEM",
    "HELP",
    "KILLED_EXIT_CODE",
    "TTL_EXIT_CODE",
    "Caps",
    "Cause",
    "Command",
    "Compute",
    "ConsiderDeploy",
    "Extend",
    "Ignore",
    "Launch",
    "Reject",
    "Slot",
    "Status",
    "StopApp",
    "StopReason",
    "PhaseChanged",
    "Stopped",
    "WentLive",
    "admitted",
    "answer_command",
    "app_url",
    "base_record",
    "WAITS_ITS_TURN",
    "cap_detail",
    "claim_launch",
    "explain_stop",
    "expiry",
    "extended",
    "launch_failed",
    "launch_id",
    "launched",
    "left_queue",
    "needs_tag_check",
    "on_task_event",
    "parse_command",
    "plan_deploy",
    "plan_stop",
    "may_wake",
    "queue_order",
    "shown_place",
    "queued",
    "rejected",
    "route_gitlab_event",
    "slot_change",
    "slot_scopes",
    "startable",
    "wake_waits",
    "start_postponed",
    "stop_requested",
    "stopped",
    "vanished",
    "starting",
    "went_live",
    "with_answer",
]

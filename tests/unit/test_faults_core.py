"""The pure decisions behind 'no fault leaves a task running, drops the queue, or loses a delivery':
the reconciler's new heals, a start postponed for a passing reason, the queue's backoff, kept
deliveries (hostile text included) and the deadline schedules' names."""

from __future__ import annotations

import dataclasses
import json

from hypothesis import given
from hypothesis import strategies as st

from review_apps import lifecycle
from review_apps.adapters.scheduler import parse_schedule_name, schedule_name
from review_apps.lifecycle import kept, reconcile
from review_apps.lifecycle.transitions import RETRY_PAUSES
from review_apps.messages import render_note
from review_apps.model.record import MergeRequestRef
from review_apps.model.values import Cause, Status, StopReason
from tests.unit.factories import NOW, TASK, record

INSTALL = "review-apps-test"
DEFINITION = "arn:aws:ecs:us-east-1:111122223333:task-definition/review-app_review-apps-test_14-3:1"
MR = MergeRequestRef(14, 3, 14, "feature/x", "acme/shop")


def running(last_status: str = "RUNNING", task_arn: str = TASK) -> reconcile.RunningTask:
    return reconcile.RunningTask(task_arn, "review-app:14:3", "launch-1", DEFINITION, last_status)


def plan(tasks, records, now, scheduled=None):
    return reconcile.plan(tasks, records, [DEFINITION], now, INSTALL, scheduled)


# --------------------------------------------------------------------------- every running task has a way to end


def test_a_running_app_without_its_schedule_is_rescheduled_and_one_with_it_is_not():
    live = record(status=Status.LIVE, live_at=NOW, deadline=NOW + 1800)
    assert plan([running()], [live], NOW + 60, scheduled=set()).reschedule == [live]
    assert plan([running()], [live], NOW + 60, scheduled={(14, 3)}).reschedule == []
    assert plan([running()], [live], NOW + 60, scheduled=None).reschedule == []  # Scheduler could not say


def test_an_app_past_its_deadline_is_stopped_not_rescheduled():
    live = record(status=Status.LIVE, live_at=NOW, deadline=NOW + 1800)
    result = plan([running()], [live], NOW + 1800, scheduled=set())
    assert result.reschedule == [] and [s.record for s in result.stop] == [live]


def test_a_launch_in_flight_is_not_rescheduled():
    claim = record(task_arn="")  # owned through startedBy: the launch has not recorded its task yet
    assert plan([running()], [claim], NOW + 5, scheduled=set()).reschedule == []


def test_a_stopping_task_is_asked_again_after_two_minutes_only():
    stopping = record(status=Status.STOPPING, stopping_since=NOW, deadline=NOW - 10)
    assert plan([running()], [stopping], NOW + reconcile.STOP_AGAIN_SECONDS - 1).stop_again == []
    [again] = plan([running()], [stopping], NOW + reconcile.STOP_AGAIN_SECONDS).stop_again
    assert again.task.task_arn == TASK and "asked again" in again.reason
    assert plan([running()], [stopping], NOW + 600).stop == []  # never saved as stopping twice


def test_a_deploying_app_whose_task_runs_past_the_grace_went_live():
    claim = record(launched_at=NOW)
    assert plan([running()], [claim], NOW + reconcile.LAUNCH_GRACE_SECONDS - 1).went_live == []
    [(owner, task)] = plan([running()], [claim], NOW + reconcile.LAUNCH_GRACE_SECONDS).went_live
    assert owner == claim and task.task_arn == TASK
    assert plan([running("PENDING")], [claim], NOW + 600).went_live == []
    live = record(status=Status.LIVE, live_at=NOW)
    assert plan([running()], [live], NOW + 600).went_live == []


def test_kept_deliveries_come_newest_first():
    old = record(mr_iid=1, pending_ask="x", pending_at=NOW)
    new = record(mr_iid=2, pending_ask="y", pending_at=NOW + 5)
    none = record(mr_iid=3)
    assert plan([], [old, none, new], NOW).kept == [new, old]


def test_stop_requested_says_since_when():
    assert lifecycle.stop_requested(record(), StopReason.MERGED, NOW + 7).stopping_since == NOW + 7


# --------------------------------------------------------------------------- retryable starts keep their place


def test_a_postponed_start_waits_in_its_place_with_a_growing_backoff():
    claim = record(status=Status.DEPLOYING, task_arn="", launched_at=NOW)
    first = lifecycle.start_postponed(claim, ("Capacity is unavailable at this time",), NOW, waiting_since=NOW - 300)
    assert first.status == Status.QUEUED and first.queued_at == NOW - 300 and first.launch_id == ""
    assert first.retry_at == NOW + RETRY_PAUSES[0] and first.start_attempts == 1 and first.deadline == 0
    assert "Capacity is unavailable" in first.queue_detail and "1 minute" in first.queue_detail
    assert lifecycle.slot_change(claim, first) == "release"
    pauses = []
    state = first
    for _ in range(len(RETRY_PAUSES) + 2):
        state = lifecycle.start_postponed(dataclasses.replace(state, status=Status.DEPLOYING), ("x",), NOW, NOW)
        pauses.append(state.retry_at - NOW)
    assert pauses == [*RETRY_PAUSES[1:], RETRY_PAUSES[-1], RETRY_PAUSES[-1], RETRY_PAUSES[-1]]


def test_a_direct_launch_postponed_joins_the_queue_now():
    claim = record(status=Status.DEPLOYING, task_arn="")
    assert lifecycle.start_postponed(claim, ("Rate exceeded",), NOW, waiting_since=0).queued_at == NOW


def test_the_postponed_note_says_it_retries_and_keeps_its_place_with_aws_text_inert():
    claim = record(status=Status.DEPLOYING, task_arn="")
    waiting = lifecycle.start_postponed(claim, ("Capacity `@here` [x](http://e)",), NOW, NOW)
    note = render_note(dataclasses.replace(waiting, queue_place=2))
    assert "**number 2** in the queue" in note and "keeping its place" in note
    assert "every slot is taken" not in note
    assert "`@here`" not in note  # AWS's text is inline code: no mention, no link


def test_a_successful_launch_forgets_the_failed_attempts():
    after = lifecycle.launched(record(start_attempts=3), task_arn=TASK, task_definition_arn="td", container="w", port=1)
    assert after.start_attempts == 0


def test_the_queue_starts_up_to_the_first_mr_waiting_out_its_backoff():
    a, b, c = (record(mr_iid=i, status=Status.QUEUED, queued_at=NOW + i) for i in (1, 2, 3))
    b = dataclasses.replace(b, retry_at=NOW + 60)
    assert lifecycle.startable([a, b, c], NOW) == [a]
    assert lifecycle.startable([a, b, c], NOW + 60) == [a, b, c]
    assert lifecycle.startable([b, a, c], NOW) == []


# --------------------------------------------------------------------------- kept deliveries


def test_every_kind_of_ask_survives_keeping():
    asks = [
        lifecycle.ConsiderDeploy(MR, "a" * 40, Cause.PUSHED, updated_at=NOW),
        lifecycle.ConsiderDeploy(MR, "b" * 40, Cause.PIPELINE),
        lifecycle.StopApp(MR, StopReason.MERGED, NOW),
        lifecycle.Command(MR, "extend", "1h", 51, "alice"),
    ]
    for ask in asks:
        assert kept.unkeep(kept.keep(ask)) == ask


def test_when_an_ask_happened():
    assert kept.when(lifecycle.StopApp(MR, StopReason.CLOSED, NOW), NOW + 9) == NOW
    assert kept.when(lifecycle.ConsiderDeploy(MR, "a" * 40, Cause.PIPELINE), NOW + 9) == NOW + 9


def test_a_kept_ask_is_bounded():
    long = lifecycle.Command(MR, "x" * 10_000, "y" * 10_000, 51, "z" * 100)
    assert len(kept.keep(long)) <= kept.MAX_KEPT_BYTES


@given(st.text(max_size=300))
def test_unkeep_refuses_any_text_that_is_not_an_ask(text):
    assert kept.unkeep(text) is None


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=20),
        lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5),
        max_leaves=20,
    )
)
def test_unkeep_refuses_any_json_that_is_not_an_ask(value):
    result = kept.unkeep(json.dumps(value))
    assert result is None or isinstance(result, lifecycle.ConsiderDeploy | lifecycle.StopApp | lifecycle.Command)


# --------------------------------------------------------------------------- schedule names


def test_schedule_names_round_trip_and_others_are_not_ours():
    assert parse_schedule_name(schedule_name(14, 3)) == (14, 3)
    for name in ("mr-14", "mr-a-3", "x-14-3", "mr-14-3-extra", "", "mr--3"):
        assert parse_schedule_name(name) is None

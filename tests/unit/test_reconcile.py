"""The reconciler's decisions, with no I/O: what it stops, checks, re-publishes, retires and corrects."""

from __future__ import annotations

from review_apps.lifecycle import Caps, reconcile
from review_apps.messages import digest, render_note
from review_apps.model.values import Status
from tests.unit.factories import NOW, TASK, record

INSTALL = "review-apps-test"
DEFINITION = "arn:aws:ecs:us-east-1:111122223333:task-definition/review-app_review-apps-test_14-3:1"


def plan(*args):
    return reconcile.plan(*args, INSTALL)


def running(
    task_arn: str = TASK, group: str = "review-app:14:3", started_by: str = "launch-1"
) -> reconcile.RunningTask:
    return reconcile.RunningTask(task_arn, group, started_by, DEFINITION)


def published(rec):
    """The record as it is once GitLab shows its note."""
    rec.note_digest = digest(render_note(rec))
    return rec


def test_an_app_is_stopped_when_its_deadline_comes_not_before():
    live = published(record(status=Status.LIVE, live_at=NOW, deadline=NOW + 1800))
    assert plan([running()], [live], [DEFINITION], NOW + 1799).stop == []
    [stop] = plan([running()], [live], [DEFINITION], NOW + 1800).stop
    assert stop.record == live and "end of its time to live" in stop.reason


def test_an_app_already_stopping_is_not_asked_again():
    stopping = record(status=Status.STOPPING, deadline=NOW - 600)
    assert plan([running()], [stopping], [DEFINITION], NOW).stop == []


def test_tasks_nobody_owns_are_stopped():
    other_launch = running(task_arn=TASK + "-2", started_by="someone-else")
    finished = record(status=Status.STOPPED)
    stops = plan([running(group="review-app:14:99"), other_launch, running()], [finished], [], NOW).stop
    assert [s.record for s in stops] == [None, None, None]


def test_active_records_without_a_running_task_are_checked_after_a_grace():
    claimed = record(status=Status.DEPLOYING, task_arn="", launched_at=NOW)
    assert plan([], [claimed], [], NOW + 60).check == []  # RunTask may still be on its way
    assert plan([], [claimed], [], NOW + 121).check == [claimed]
    launched = record(status=Status.LIVE)
    assert plan([], [launched], [], NOW).check == [launched]


def test_views_that_did_not_reach_gitlab_are_republished():
    behind = record(status=Status.STOPPED)
    up_to_date = published(record(mr_iid=4, status=Status.REJECTED, problems=["bad spec"]))  # a note only
    assert plan([], [behind, up_to_date], [], NOW).republish == [behind]
    waiting = record(mr_iid=5, status=Status.QUEUED, task_arn="", queue_place=1)
    assert plan([], [waiting], [], NOW).republish == [waiting]  # queued is not "active"


def test_unused_derived_definitions_are_retired_except_while_launching():
    unused = "arn:aws:ecs:us-east-1:111122223333:task-definition/review-app_review-apps-test_14-7:2"
    launching = "arn:aws:ecs:us-east-1:111122223333:task-definition/review-app_review-apps-test_14-8:1"
    records = [record(status=Status.LIVE), record(mr_iid=8, status=Status.DEPLOYING, task_definition_arn="")]
    result = plan([running()], records, [DEFINITION, unused, launching], NOW)
    assert result.retire == [unused]


# --------------------------------------------------------------------------- running slots

CAPS = Caps(overall=2, per_project=1)


def test_slots_agreeing_with_the_records_need_nothing():
    live = record(status=Status.LIVE)
    holders = {"all": {"14/3"}, "project/14": {"14/3"}}
    assert reconcile.slot_corrections([live, record(mr_iid=4, status=Status.STOPPED)], holders, CAPS) == []


def test_a_running_app_missing_from_a_slot_set_is_added():
    """E.g. caps were turned on while it ran."""
    live = record(status=Status.LIVE)
    fixes = reconcile.slot_corrections([live], {"all": set(), "project/14": {"14/3"}}, CAPS)
    assert fixes == [reconcile.SlotCorrection("all", "14/3", True, live)]


def test_members_whose_app_is_not_running_are_taken_out():
    gone = record(mr_iid=4, status=Status.STOPPED)
    waiting = record(mr_iid=5, status=Status.QUEUED)
    fixes = reconcile.slot_corrections([gone, waiting], {"all": {"14/4", "14/5", "14/6"}}, Caps(overall=2))
    assert [(f.mr, f.hold, f.record) for f in fixes] == [
        ("14/4", False, gone),
        ("14/5", False, waiting),
        ("14/6", False, None),
    ]


def test_without_caps_there_is_nothing_to_correct():
    assert reconcile.slot_corrections([record(status=Status.LIVE)], {}, Caps()) == []

"""Every lifecycle rule, with no I/O: what each GitLab and ECS event leads to."""

from __future__ import annotations

import dataclasses

import pytest

from review_apps import lifecycle
from review_apps.events import MergeRequestEvent, NoteEvent, OtherEvent, PipelineEvent
from review_apps.lifecycle import ConsiderDeploy, Ignore, Launch, Reject, StopApp, StopReason
from review_apps.messages import render_note
from review_apps.model.values import Status
from review_apps.problems import Problems
from tests.unit.factories import MR, NOW, SHA, SHA2, TASK, record, spec, task_event


def mr_event(action: str, pushed: bool = False, state: str = "opened") -> MergeRequestEvent:
    return MergeRequestEvent(mr=MR, action=action, state=state, head_sha=SHA, pushed=pushed, draft=False, labels=())


# --------------------------------------------------------------------------- routing GitLab events


@pytest.mark.parametrize(("action", "cause"), [("open", "opened"), ("reopen", "reopened")])
def test_opening_considers_a_deploy(action, cause):
    # A reopened MR may still carry its old note (its record may have expired): it is not "brand new".
    assert lifecycle.route_gitlab_event(mr_event(action)) == ConsiderDeploy(MR, SHA, cause)


def test_push_considers_a_redeploy():
    assert lifecycle.route_gitlab_event(mr_event("update", pushed=True)) == ConsiderDeploy(MR, SHA, "pushed")


def test_edit_without_new_commits_is_ignored():
    decision = lifecycle.route_gitlab_event(mr_event("update", pushed=False))
    assert isinstance(decision, Ignore) and "without new commits" in decision.reason


@pytest.mark.parametrize(("action", "reason"), [("merge", StopReason.MERGED), ("close", StopReason.CLOSED)])
def test_merge_and_close_stop_the_app(action, reason):
    assert lifecycle.route_gitlab_event(mr_event(action)) == StopApp(MR, reason)


def test_late_mr_events_change_nothing():
    """A delayed `open` must not bring back an older commit after a newer push was applied."""
    applied = record(status=Status.LIVE, commit_sha=SHA2, mr_updated_at=NOW)
    late_open = ConsiderDeploy(MR, SHA, "opened", updated_at=NOW - 5)
    assert "older than one already applied" in plan(late_open, spec(trigger="merge_request"), applied).reason
    late_close = lifecycle.plan_stop(applied, updated_at=NOW - 5)
    assert "older than one already applied" in late_close.reason
    newer = ConsiderDeploy(MR, SHA, "pushed", updated_at=NOW + 5)
    launch = plan(newer, spec(trigger="merge_request"), applied)
    assert isinstance(launch, Launch)
    assert lifecycle.claim_launch(applied, MR, launch, NOW + 6).mr_updated_at == NOW + 5
    unknown_time = ConsiderDeploy(MR, SHA, "pushed", updated_at=0)
    assert isinstance(plan(unknown_time, spec(trigger="merge_request"), applied), Launch)


@pytest.mark.parametrize("action", ["approved", "unapproved", "approval", "unapproval", ""])
def test_other_mr_actions_are_ignored(action):
    assert isinstance(lifecycle.route_gitlab_event(mr_event(action)), Ignore)


def test_successful_mr_pipeline_considers_a_deploy():
    event = PipelineEvent(mr=MR, status="success", sha=SHA2, source="merge_request_event", pipeline_id=9)
    assert lifecycle.route_gitlab_event(event) == ConsiderDeploy(MR, SHA2, "pipeline")


@pytest.mark.parametrize("status", ["running", "failed", "canceled", "pending", "created"])
def test_unfinished_or_failed_pipelines_are_ignored(status):
    event = PipelineEvent(mr=MR, status=status, sha=SHA, source="merge_request_event", pipeline_id=9)
    decision = lifecycle.route_gitlab_event(event)
    assert isinstance(decision, Ignore) and status in decision.reason


def test_branch_pipeline_without_mr_is_ignored():
    event = PipelineEvent(mr=None, status="success", sha=SHA, source="push", pipeline_id=9)
    assert "not for a merge request" in lifecycle.route_gitlab_event(event).reason


def test_comments_and_other_kinds_are_ignored():
    note = NoteEvent(mr=MR, noteable_type="MergeRequest", system=False, text="hi", author_id=1)
    issue_note = NoteEvent(mr=None, noteable_type="Issue", system=False, text="hi", author_id=1)
    assert isinstance(lifecycle.route_gitlab_event(note), Ignore)
    assert "Issue" in lifecycle.route_gitlab_event(issue_note).reason
    assert "'push'" in lifecycle.route_gitlab_event(OtherEvent("push")).reason


# --------------------------------------------------------------------------- planning a deploy


def plan(ask, the_spec, the_record, state="opened", head=None):
    return lifecycle.plan_deploy(ask, the_spec, the_record, mr_state=state, mr_head_sha=head or ask.sha)


OPENED = ConsiderDeploy(MR, SHA, "opened")
PUSHED = ConsiderDeploy(MR, SHA2, "pushed")
PIPELINE = ConsiderDeploy(MR, SHA, "pipeline")


def test_no_spec_means_no_review_app():
    assert "no .gitlab/review-app.yml" in plan(PIPELINE, None, None).reason


def test_trigger_merge_request_launches_on_open():
    decision = plan(OPENED, spec(trigger="merge_request"), None)
    assert decision == Launch(spec=spec(trigger="merge_request"), sha=SHA)


def test_trigger_pipeline_waits_for_the_pipeline():
    assert "waiting for this commit's pipeline" in plan(OPENED, spec(), None).reason
    assert isinstance(plan(PIPELINE, spec(), None), Launch)


def test_trigger_merge_request_ignores_pipelines():
    assert "pipelines do not deploy" in plan(PIPELINE, spec(trigger="merge_request"), None).reason


def test_pipeline_for_an_old_commit_is_ignored():
    decision = plan(PIPELINE, spec(), None, head=SHA2)
    assert isinstance(decision, Ignore) and "no longer the merge request's head" in decision.reason


@pytest.mark.parametrize("state", ["closed", "merged", "locked"])
def test_pipeline_for_a_closed_mr_is_ignored(state):
    assert state in plan(PIPELINE, spec(), None, state=state).reason


def test_push_replaces_the_running_app():
    running = record(status=Status.LIVE)
    decision = plan(PUSHED, spec(trigger="merge_request"), running)
    assert isinstance(decision, Launch) and decision.sha == SHA2
    claimed = lifecycle.claim_launch(running, MR, decision, NOW)
    assert (claimed.replaced_task_arn, claimed.replaced_commit) == (running.task_arn, running.commit_sha)


def test_same_commit_already_running_is_not_launched_twice():
    for status in (Status.DEPLOYING, Status.LIVE):
        assert "already deployed" in plan(PIPELINE, spec(), record(status=status)).reason


def test_a_stopped_app_for_the_same_commit_can_be_relaunched():
    decision = plan(PIPELINE, spec(), record(status=Status.STOPPED, stop_reason=StopReason.TTL))
    assert isinstance(decision, Launch)
    assert lifecycle.claim_launch(record(status=Status.STOPPED), MR, decision, NOW).replaced_task_arn == ""


def test_invalid_spec_is_rejected_once_per_commit():
    problems = Problems(("`ttl`: nope",))
    assert plan(PIPELINE, problems, None) == Reject(("`ttl`: nope",))
    already = record(status=Status.REJECTED, commit_sha=SHA)
    assert isinstance(plan(PIPELINE, problems, already), Ignore)


def test_stop_needs_a_running_app():
    assert isinstance(lifecycle.plan_stop(None), Ignore)
    assert isinstance(lifecycle.plan_stop(record(status=Status.STOPPED)), Ignore)
    assert "already stopping" in lifecycle.plan_stop(record(status=Status.STOPPING)).reason
    live = record(status=Status.LIVE)
    assert lifecycle.plan_stop(live) is live


# --------------------------------------------------------------------------- record transitions


def test_claim_resets_the_launch_and_remembers_what_it_replaces():
    old = record(status=Status.LIVE, url="http://10.0.0.1:8000", live_at=NOW, event_version=9, deployment_id=5)
    launch = Launch(spec=spec(ttl_seconds=3600), sha=SHA2)
    claimed = lifecycle.claim_launch(old, MR, launch, NOW + 100)
    assert claimed.status == Status.DEPLOYING
    assert claimed.commit_sha == SHA2 and claimed.replaced_commit == SHA
    assert claimed.task_arn == "" and claimed.url == "" and claimed.event_version == 0
    assert claimed.deadline == NOW + 100 + 3600 and claimed.deployment_id == 0
    assert claimed.note_id == old.note_id  # still the same note on the MR


def test_a_claim_over_an_unfinished_claim_inherits_the_task_to_stop():
    """A launched T1; B claimed (to replace T1) but lost its race before stopping T1; C claims
    over B's claim: C must still stop T1, or T1 runs on with no record pointing at it."""
    running = record(status=Status.LIVE, task_arn=TASK, commit_sha=SHA)
    b_claim = lifecycle.claim_launch(running, MR, Launch(spec(), SHA2), NOW)
    assert (b_claim.task_arn, b_claim.replaced_task_arn, b_claim.replaced_commit) == ("", TASK, SHA)
    c_claim = lifecycle.claim_launch(b_claim, MR, Launch(spec(), "c" * 40), NOW + 1)
    assert c_claim.replaced_task_arn == TASK and c_claim.replaced_commit == SHA
    assert c_claim.replaced_task_definition_arn == running.task_definition_arn
    finished = lifecycle.claim_launch(record(status=Status.STOPPED), MR, Launch(spec(), SHA2), NOW)
    assert finished.replaced_task_arn == "" and finished.replaced_commit == ""


def test_launch_id_is_deterministic_and_fits_started_by():
    first = lifecycle.launch_id(14, 3, SHA, 2)
    assert first == lifecycle.launch_id(14, 3, SHA, 2)
    assert first != lifecycle.launch_id(14, 3, SHA, 3) != lifecycle.launch_id(14, 3, SHA2, 2)
    assert len(first) <= 36 and first.isalnum()


def test_rejected_spec_keeps_a_running_app_running():
    live = record(status=Status.LIVE)
    after = lifecycle.rejected(live, MR, SHA2, ("bad",), NOW)
    assert after.status == Status.LIVE and after.commit_sha == SHA and after.problems == ["bad"]
    fresh = lifecycle.rejected(None, MR, SHA2, ("bad",), NOW)
    assert fresh.status == Status.REJECTED and fresh.commit_sha == SHA2
    assert fresh.expires_at > NOW and after.expires_at == 0


def test_launch_failure_is_recorded_with_its_reasons():
    failed = lifecycle.launch_failed(record(), ("RESOURCE:FARGATE",), NOW)
    assert failed.status == Status.FAILED and failed.problems == ["RESOURCE:FARGATE"]


# --------------------------------------------------------------------------- ECS task events


def test_running_event_makes_the_app_live():
    assert lifecycle.on_task_event(task_event("RUNNING"), record()) == lifecycle.WentLive()


def test_event_found_by_started_by_before_the_task_arn_is_recorded_if_the_task_is_tagged_ours():
    event, unrecorded = task_event("RUNNING"), record(task_arn="")
    assert lifecycle.needs_tag_check(event, unrecorded)
    assert lifecycle.on_task_event(event, unrecorded, tagged=True) == lifecycle.WentLive()
    # Anyone who may run tasks in the cluster can give one the MR's group and startedBy.
    assert "not the merge request's current" in lifecycle.on_task_event(event, unrecorded, tagged=False).reason


def test_once_the_record_holds_a_task_only_that_task_speaks_for_the_mr():
    other = task_event("RUNNING", task_arn=TASK + "-other")  # same group and startedBy: computable by anyone
    assert not lifecycle.needs_tag_check(other, record())
    assert "not the merge request's current" in lifecycle.on_task_event(other, record(), tagged=True).reason
    assert not lifecycle.needs_tag_check(task_event("RUNNING"), record())  # its own task: no tag check needed


def test_foreign_task_is_ignored():
    event = task_event("RUNNING", task_arn=TASK + "-other", started_by="someone-else")
    assert "not the merge request's current" in lifecycle.on_task_event(event, record()).reason


def test_no_record_is_ignored():
    assert isinstance(lifecycle.on_task_event(task_event(), None), Ignore)


@pytest.mark.parametrize("version", [3, 5])
def test_stale_or_duplicate_events_change_nothing(version):
    live = record(status=Status.LIVE, event_version=5)
    assert "not newer" in lifecycle.on_task_event(task_event("STOPPED", version=version), live).reason


@pytest.mark.parametrize("status", [Status.STOPPED, Status.FAILED, Status.REJECTED])
def test_finished_apps_are_never_resurrected(status):
    done = record(status=status, event_version=9)
    assert isinstance(lifecycle.on_task_event(task_event("RUNNING", version=12), done), Ignore)


def test_second_running_event_changes_nothing():
    live = record(status=Status.LIVE, event_version=5)
    assert isinstance(lifecycle.on_task_event(task_event("RUNNING", version=6), live), Ignore)


@pytest.mark.parametrize("status", ["DEACTIVATING", "DEPROVISIONING"])
def test_stopping_states_change_nothing(status):
    assert isinstance(lifecycle.on_task_event(task_event(status), record()), Ignore)


def test_a_starting_task_moves_through_its_phases_forward_only():
    from datetime import UTC, datetime

    from review_apps.lifecycle.task_events import phase_of

    pulled = datetime(2027, 1, 1, tzinfo=UTC)
    provisioning = task_event("PROVISIONING")
    pulling = dataclasses.replace(task_event("PENDING"), pull_started_at=pulled)
    starting = dataclasses.replace(pulling, pull_stopped_at=pulled)
    assert [
        phase_of(e) for e in (provisioning, task_event("PENDING"), pulling, starting, task_event("ACTIVATING"))
    ] == ["capacity", "capacity", "pulling", "starting", "starting"]
    deploying = record(status=Status.DEPLOYING, event_version=1)
    assert lifecycle.on_task_event(pulling, deploying) == lifecycle.PhaseChanged("pulling")
    assert isinstance(lifecycle.on_task_event(pulling, record(status=Status.DEPLOYING, phase="pulling")), Ignore)
    late = lifecycle.on_task_event(provisioning, record(status=Status.DEPLOYING, phase="starting"))
    assert isinstance(late, Ignore)  # a late event never takes the note back a phase
    unrecorded = lifecycle.on_task_event(pulling, record(status=Status.DEPLOYING, task_arn=""), tagged=True)
    assert "still being recorded" in unrecorded.reason  # a write now would make the launch lose its own
    assert isinstance(lifecycle.on_task_event(pulling, record(status=Status.LIVE)), Ignore)


def test_stopped_event_stops_a_live_or_stopping_app():
    for status in (Status.DEPLOYING, Status.LIVE, Status.STOPPING):
        assert lifecycle.on_task_event(task_event("STOPPED", version=9), record(status=status)) == lifecycle.Stopped()


def test_went_live_records_url_and_start():
    live = lifecycle.went_live(record(), task_event("RUNNING"), url="http://10.0.0.7:8000", url_note="", now=NOW)
    assert live.status == Status.LIVE and live.url == "http://10.0.0.7:8000"
    assert live.live_at == NOW + 40 and live.event_version == 5


def test_app_url_prefers_public_ip_and_says_when_there_is_none():
    assert lifecycle.app_url("10.0.0.7", "3.3.3.3", 80, True) == ("http://3.3.3.3:80", "")
    assert lifecycle.app_url("10.0.0.7", None, 80, False) == ("http://10.0.0.7:80", "")
    url, caveat = lifecycle.app_url("10.0.0.7", None, 80, True)
    assert url == "http://10.0.0.7:80" and "No public IP" in caveat
    assert lifecycle.app_url(None, None, 80, False)[0] == ""


# --------------------------------------------------------------------------- why an app stopped


def explain(event, rec=None, now=NOW + 1840):
    return lifecycle.explain_stop(event, rec or record(status=Status.LIVE, live_at=NOW), now)


def test_ttl_reached_is_exit_124():
    assert explain(task_event("STOPPED", exit_code=124, stop_code="EssentialContainerExited")) == (StopReason.TTL, "")


def test_killed_after_the_deadline_is_still_the_ttl():
    reason, detail = explain(task_event("STOPPED", exit_code=137, stop_code="EssentialContainerExited"))
    assert reason == StopReason.TTL and "killed" in detail


def test_killed_before_the_deadline_is_a_crash():
    event = task_event("STOPPED", exit_code=137, stop_code="EssentialContainerExited", stopped_reason="OOM")
    reason, detail = explain(event, now=NOW + 60)
    assert reason == StopReason.CRASHED and "137" in detail and "OOM" in detail


def test_crash_names_container_exit_code_and_reason():
    event = task_event(
        "STOPPED",
        exit_code=1,
        stop_code="EssentialContainerExited",
        stopped_reason="Essential container in task exited",
    )
    assert explain(event) == (
        StopReason.CRASHED,
        "container `web` exited with code 1 (Essential container in task exited)",
    )


def test_failed_to_start():
    event = task_event("STOPPED", stop_code="TaskFailedToStart", stopped_reason="CannotPullContainerError: nope")
    assert explain(event) == (StopReason.FAILED_TO_START, "CannotPullContainerError: nope")
    no_code = task_event("STOPPED", stopped_reason="ResourceInitializationError: secrets")
    assert explain(no_code)[0] == StopReason.FAILED_TO_START


@pytest.mark.parametrize("code", ["SpotInterruption", "TerminationNotice"])
def test_spot_interruption(code):
    assert explain(task_event("STOPPED", exit_code=143, stop_code=code))[0] == StopReason.SPOT


@pytest.mark.parametrize("reason", [StopReason.MERGED, StopReason.CLOSED])
def test_our_own_stop_keeps_its_reason(reason):
    stopping = record(status=Status.STOPPING, stop_reason=reason, live_at=NOW)
    event = task_event("STOPPED", exit_code=143, stop_code="UserInitiated", stopped_reason="Review app stopped")
    assert explain(event, stopping) == (reason, "")


def test_someone_else_stopping_it_is_said_so():
    event = task_event("STOPPED", exit_code=143, stop_code="UserInitiated", stopped_reason="by ops")
    assert explain(event) == (StopReason.STOPPED_OUTSIDE, "by ops")


def test_unknown_stop():
    assert explain(task_event("STOPPED", stopped_reason="Host EC2 terminated"))[0] == StopReason.UNKNOWN


def test_stopped_before_starting_is_a_failure_unless_we_asked():
    crashed = lifecycle.stopped(record(), task_event("STOPPED", exit_code=1, version=7, started=False), NOW)
    assert crashed.status == Status.FAILED and crashed.stop_reason == StopReason.CRASHED
    merged = lifecycle.stopped(
        record(status=Status.STOPPING, stop_reason=StopReason.MERGED),
        task_event("STOPPED", version=7, started=False),
        NOW,
    )
    assert merged.status == Status.STOPPED and merged.stop_reason == StopReason.MERGED
    assert crashed.expires_at == merged.expires_at == NOW + 14 * 86400


def test_stopped_event_alone_tells_that_the_app_had_started():
    """RUNNING may arrive after STOPPED, or never: the outcome must not depend on it."""
    in_order = lifecycle.stopped(
        lifecycle.went_live(record(), task_event("RUNNING"), url="http://10.0.0.7:8000", url_note="", now=NOW),
        task_event("STOPPED", exit_code=124, version=8),
        NOW + 1900,
    )
    stopped_first = lifecycle.stopped(record(), task_event("STOPPED", exit_code=124, version=8), NOW + 1900)
    assert stopped_first == dataclasses.replace(in_order, url_note=stopped_first.url_note)
    assert stopped_first.status == Status.STOPPED and stopped_first.live_at == NOW + 40
    assert stopped_first.url == "http://10.0.0.7:8000"


def test_stopped_after_live_records_when():
    live = record(status=Status.LIVE, live_at=NOW + 40, event_version=5)
    done = lifecycle.stopped(live, task_event("STOPPED", exit_code=124, version=8), NOW + 5000)
    assert done.status == Status.STOPPED and done.stopped_at == NOW + 1840 and done.event_version == 8
    assert dataclasses.replace(done, status=Status.LIVE).active


# --------------------------------------------------------------------------- labels and drafts


def labelled(cause="opened", labels=(), draft=False, added=(), removed=(), ready=False, sha=SHA):
    return ConsiderDeploy(
        MR,
        sha,
        cause,
        labels=tuple(labels),
        draft=draft,
        labels_added=tuple(added),
        labels_removed=tuple(removed),
        became_ready=ready,
    )


ON_LABEL = spec(trigger="merge_request", label="review-app")


def test_label_edits_are_considered_only_when_labels_or_draft_changed():
    event = MergeRequestEvent(
        mr=MR,
        action="update",
        state="opened",
        head_sha=SHA,
        pushed=False,
        draft=False,
        labels=("review-app",),
        labels_added=("review-app",),
    )
    assert lifecycle.route_gitlab_event(event).cause == "edited"


def test_only_labelled_mrs_get_an_app():
    assert "does not have the `review-app` label" in plan(labelled(), ON_LABEL, None).reason
    assert isinstance(plan(labelled(labels=["review-app"]), ON_LABEL, None), Launch)


def test_adding_the_label_deploys_whatever_the_trigger():
    adding = labelled("edited", labels=["review-app"], added=["review-app"])
    assert isinstance(plan(adding, spec(label="review-app"), None), Launch)
    other = labelled("edited", labels=["review-app", "ux"], added=["ux"])
    assert isinstance(plan(other, ON_LABEL, None), Ignore)


def test_removing_the_label_stops_the_app():
    removing = labelled("edited", labels=[], removed=["review-app"])
    assert plan(removing, ON_LABEL, record(status=Status.LIVE)) == StopApp(MR, StopReason.UNLABELED)
    assert isinstance(plan(removing, ON_LABEL, None), Ignore)


def test_drafts_get_no_automatic_app_unless_the_spec_allows():
    assert "draft merge requests" in plan(labelled(draft=True), spec(trigger="merge_request"), None).reason
    assert isinstance(plan(labelled(draft=True), spec(trigger="merge_request", drafts=True), None), Launch)
    ready = labelled("edited", ready=True)
    assert isinstance(plan(ready, spec(), None), Launch)  # even with trigger: pipeline


def test_edits_that_matter_to_no_rule_change_nothing():
    assert "without new commits" in plan(labelled("edited", added=["ux"], labels=["ux"]), spec(), None).reason


# --------------------------------------------------------------------------- comment commands


def comment(text: str, system: bool = False) -> NoteEvent:
    return NoteEvent(mr=MR, noteable_type="MergeRequest", system=system, text=text, author_id=7, author="alice")


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("/review-app deploy", ("deploy", "")),
        ("/review-app extend 1h\nplease", ("extend", "1h")),
        ("/review-app", ("help", "")),
        ("  /review-app STATUS  ", ("status", "")),
        ("/review-apps deploy", None),
        ("please /review-app deploy", None),
        ("", None),
    ],
)
def test_parse_command(text, parsed):
    assert lifecycle.parse_command(text) == parsed


def test_commands_are_routed_and_other_comments_ignored():
    command = lifecycle.route_gitlab_event(comment("/review-app stop"))
    assert isinstance(command, lifecycle.Command) and (command.verb, command.author) == ("stop", "alice")
    assert "system notes" in lifecycle.route_gitlab_event(comment("/review-app stop", system=True)).reason
    assert "not a /review-app command" in lifecycle.route_gitlab_event(comment("LGTM")).reason


def answer(text, access=30, rec=None):
    return lifecycle.answer_command(lifecycle.route_gitlab_event(comment(text)), access, rec)


@pytest.mark.parametrize("access", [None, 10, 20])
def test_only_developers_and_up_may_command(access):
    assert "only members of this project with Developer access or more" in answer("/review-app deploy", access)


def test_what_each_command_does():
    assert answer("/review-app stop") == StopApp(MR, StopReason.COMMAND, 0, by="alice")
    deploy = answer("/review-app deploy")
    assert isinstance(deploy, ConsiderDeploy) and deploy.cause == "command"
    assert "is live at http://10.0.0.7:8000" in answer(
        "/review-app status", rec=record(status=Status.LIVE, url="http://10.0.0.7:8000")
    )
    assert "nothing has been deployed" in answer("/review-app status")
    assert "`/review-app deploy` launches" in answer("/review-app help")
    assert "`dance` is not a review-app command" in answer("/review-app dance")
    assert answer("/review-app extend 1h") == lifecycle.Extend(MR, 3600, "alice")
    assert "say how much longer" in answer("/review-app extend soon")
    assert "say how much longer" in answer("/review-app extend")


def test_a_deploy_command_skips_the_automatic_gates():
    asked = ConsiderDeploy(MR, SHA, "command", labels=(), draft=True)
    gated = spec(trigger="pipeline", label="review-app")
    assert isinstance(plan(asked, gated, None), Launch)
    relaunch = plan(asked, gated, record(status=Status.LIVE, commit_sha=SHA))
    running = record(status=Status.LIVE, commit_sha=SHA)
    assert isinstance(relaunch, Launch)
    assert lifecycle.claim_launch(running, MR, relaunch, NOW).replaced_task_arn == running.task_arn


# --------------------------------------------------------------------------- extending the time to live

MAX_TTL = 4 * 3600


def extend(rec, seconds):
    return lifecycle.extended(rec, lifecycle.Extend(MR, seconds, "alice"), MAX_TTL)


def test_extend_moves_the_deadline_from_when_the_app_went_live():
    live = record(status=Status.LIVE, live_at=NOW + 40, deadline=NOW + 40 + 1800)
    longer = extend(live, 3600)
    assert longer.deadline == NOW + 40 + 1800 + 3600
    assert (longer.ttl_seconds, longer.extended_seconds) == (5400, 3600)
    assert "extended by 1h; the app now stops at 2027-01-15 09:30 UTC" in longer.last_command
    again = extend(longer, 1800)
    assert (again.ttl_seconds, again.extended_seconds) == (7200, 5400)


def test_extend_is_capped_at_the_maximum_ttl_and_says_so():
    live = record(status=Status.LIVE, live_at=NOW, ttl_seconds=3 * 3600, deadline=NOW + 3 * 3600)
    capped = extend(live, 5 * 3600)
    assert capped.deadline == NOW + MAX_TTL and capped.extended_seconds == 3600
    assert "extended by 1h" in capped.last_command and "at most 4h in all" in capped.last_command
    at_max = extend(capped, 600)
    assert isinstance(at_max, str) and "already has this install's maximum time to live (4h)" in at_max


def test_an_extension_before_going_live_counts_from_the_start():
    deploying = extend(record(status=Status.DEPLOYING), 1800)
    assert deploying.deadline == NOW + 3600
    live = lifecycle.went_live(deploying, task_event("RUNNING"), url="http://x:1", url_note="", now=NOW + 50)
    assert live.deadline == NOW + 40 + 3600  # the task started at NOW + 40


@pytest.mark.parametrize("status", [Status.STOPPING, Status.STOPPED, Status.FAILED, Status.REJECTED])
def test_only_a_running_app_can_be_extended(status):
    assert "no running review app to extend" in extend(record(status=status), 600)
    assert "no running review app to extend" in extend(None, 600)
    assert "it is queued" in extend(record(status=Status.QUEUED), 600)


# --------------------------------------------------------------------------- caps and the queue


def test_slot_scopes_follow_the_caps():
    assert lifecycle.slot_scopes(lifecycle.Caps(), 14) == ()
    assert lifecycle.slot_scopes(lifecycle.Caps(5, 2), 14) == (("all", 5), ("project/14", 2))
    assert lifecycle.slot_scopes(lifecycle.Caps(0, 2), 14) == (("project/14", 2),)
    assert lifecycle.cap_detail("all", 1) == "this install runs at most 1 review app at once"
    assert lifecycle.cap_detail("project/14", 3) == "this project may run at most 3 review apps at once"


def test_slot_change_takes_keeps_and_releases():
    launch = Launch(spec(), SHA2)
    fresh = lifecycle.claim_launch(None, MR, launch, NOW)
    assert lifecycle.slot_change(None, fresh) == lifecycle.Slot.TAKE
    done = record(status=Status.STOPPED)
    assert lifecycle.slot_change(done, lifecycle.claim_launch(done, MR, launch, NOW)) == lifecycle.Slot.TAKE
    waiting = record(status=Status.QUEUED, launch_id="")
    assert lifecycle.slot_change(waiting, lifecycle.claim_launch(waiting, MR, launch, NOW)) == lifecycle.Slot.TAKE
    live = record(status=Status.LIVE)
    assert lifecycle.slot_change(live, lifecycle.claim_launch(live, MR, launch, NOW)) == lifecycle.Slot.KEEP
    ended = lifecycle.stopped(live, task_event("STOPPED", exit_code=0, version=9), NOW)
    assert lifecycle.slot_change(live, ended) == lifecycle.Slot.RELEASE
    failed = lifecycle.launch_failed(fresh, ("no capacity",), NOW)
    assert lifecycle.slot_change(fresh, failed) == lifecycle.Slot.RELEASE
    assert lifecycle.slot_change(live, lifecycle.went_live(record(), task_event(), url="", url_note="", now=NOW)) == ""
    assert lifecycle.slot_change(live, lifecycle.stop_requested(live, StopReason.CLOSED, 0)) == ""


def test_a_queued_app_keeps_its_place_when_a_new_commit_arrives():
    first = lifecycle.queued(lifecycle.claim_launch(None, MR, Launch(spec(), SHA), NOW), None, "full")
    assert (first.status, first.queued_at, first.launch_id, first.deadline) == (Status.QUEUED, NOW, "", 0)
    placed = dataclasses.replace(first, queue_place=3)
    newer = lifecycle.claim_launch(placed, MR, Launch(spec(), SHA2), NOW + 60)
    assert newer.queued_at == 0  # a claim that gets a slot leaves the queue
    again = lifecycle.queued(newer, placed, "full")
    assert (again.commit_sha, again.queued_at, again.queue_place) == (SHA2, NOW, 3)


def test_queue_order_is_first_come_first_served():
    a = record(mr_iid=1, status=Status.QUEUED, queued_at=NOW + 5)
    b = record(mr_iid=2, status=Status.QUEUED, queued_at=NOW)
    c = record(mr_iid=3, status=Status.LIVE)
    d = record(mr_iid=4, status=Status.QUEUED, queued_at=NOW)
    assert [r.mr_iid for r in lifecycle.queue_order([a, b, c, d])] == [2, 4, 1]


def test_queued_mrs_can_be_stopped_and_leave_the_queue():
    waiting = record(status=Status.QUEUED, queued_at=NOW, queue_place=2, task_arn="", launch_id="")
    assert lifecycle.plan_stop(waiting) == waiting
    left = lifecycle.left_queue(waiting, StopReason.MERGED, "", NOW + 9)
    assert (left.status, left.stop_reason, left.live_at, left.queue_place) == (Status.STOPPED, "merged", 0, 0)
    assert left.expires_at > NOW


def test_the_queue_gates():
    waiting = record(status=Status.QUEUED, queued_at=NOW, commit_sha=SHA, launch_id="")
    from_queue = ConsiderDeploy(MR, SHA, "queue", labels=(), draft=True)
    gated = spec(trigger="pipeline", label="review-app")
    assert isinstance(plan(from_queue, gated, waiting), Launch)  # it passed the gates when it queued
    assert "no longer waiting in the queue" in plan(from_queue, gated, record(status=Status.LIVE)).reason
    assert "no longer waiting in the queue" in plan(from_queue, gated, None).reason
    merged = lifecycle.plan_deploy(from_queue, gated, waiting, mr_state="merged", mr_head_sha=SHA)
    assert merged == StopApp(MR, StopReason.MERGED)
    closed = lifecycle.plan_deploy(from_queue, gated, waiting, mr_state="closed", mr_head_sha=SHA)
    assert closed == StopApp(MR, StopReason.CLOSED)
    same_commit = ConsiderDeploy(MR, SHA, "pipeline")
    assert "already queued (number 1 in line)" in plan(same_commit, spec(), waiting).reason
    unlabeled = ConsiderDeploy(MR, SHA, "edited", labels=(), labels_removed=("review-app",))
    assert plan(unlabeled, spec(label="review-app"), waiting) == StopApp(MR, StopReason.UNLABELED)


# --------------------------------------------------------------------------- a task that vanished


def test_a_launch_interrupted_before_its_task_started_fails_with_a_hint():
    gone = lifecycle.vanished(record(status=Status.DEPLOYING, task_arn=""), NOW)
    assert gone.status == Status.FAILED and "launch was interrupted" in gone.problems[0]


def test_a_launch_stopped_on_purpose_before_its_task_was_recorded_is_stopped_not_failed():
    """Merged while RunTask was in flight: the launch stops its own task and records nothing."""
    stopping = lifecycle.stop_requested(record(status=Status.DEPLOYING, task_arn=""), StopReason.MERGED, 0)
    gone = lifecycle.vanished(stopping, NOW)
    assert (gone.status, gone.stop_reason, gone.problems) == (Status.STOPPED, StopReason.MERGED, [])
    assert gone.expires_at > NOW


def test_a_vanished_task_that_had_gone_live_stopped_and_one_that_had_not_failed():
    ran = lifecycle.vanished(record(status=Status.LIVE, live_at=NOW), NOW + 60)
    assert (ran.status, ran.stop_reason) == (Status.STOPPED, StopReason.UNKNOWN)
    never = lifecycle.vanished(record(status=Status.DEPLOYING), NOW + 60)
    assert never.status == Status.FAILED and "no longer describes it" in never.stop_detail


def test_a_queued_mr_whose_spec_is_gone_leaves_the_queue_with_the_reason():
    waiting = record(status=Status.QUEUED, task_arn="", launch_id="")
    decision = plan(ConsiderDeploy(MR, SHA, "queue"), None, waiting)
    assert isinstance(decision, Reject) and "no longer exists at commit `aaaaaaaa`" in decision.problems[0]
    assert isinstance(plan(ConsiderDeploy(MR, SHA, "pushed"), None, waiting), Ignore)


def test_a_new_commit_after_an_extension_starts_over_with_its_own_ttl():
    """The extension was for the old app: the new commit's app must not say "extended"."""
    extended_app = extend(record(status=Status.LIVE, live_at=NOW, deadline=NOW + 1800), 3600)
    assert extended_app.extended_seconds == 3600
    claim = lifecycle.claim_launch(extended_app, MR, lifecycle.Launch(spec(ttl_seconds=1800), "b" * 40), NOW + 99)
    assert (claim.extended_seconds, claim.ttl_seconds, claim.deadline) == (0, 1800, NOW + 99 + 1800)
    assert "extended" not in render_note(claim)


@pytest.mark.parametrize(
    ("allowlist", "admitted"),
    [
        ((), True),
        (("14",), True),
        (("g/p",), True),
        (("other", "g/p"), True),
        (("15",), False),
        (("g/q",), False),
        (("",), False),
    ],
)
def test_the_allowlist_admits_projects_by_id_or_path(allowlist, admitted):
    decision = lifecycle.admitted(MR, allowlist)
    assert (decision is None) is admitted
    if not admitted:
        assert decision.reason == "project g/p is not in this install's project allowlist"


def test_the_allowlist_names_a_project_without_a_path_by_its_id():
    nameless = dataclasses.replace(MR, project_path="")
    assert lifecycle.admitted(nameless, ("",)) is not None  # an empty entry matches no path
    assert lifecycle.admitted(nameless, ("15",)).reason == "project 14 is not in this install's project allowlist"


def test_an_unknown_command_is_echoed_as_inert_code():
    hostile = lifecycle.Command(MR, "`@all`[x](https://evil.example)", "", 5, "alice")
    answer = lifecycle.answer_command(hostile, 30, None)
    assert answer.startswith("@alice: `'@all'[x](https://evil.example)` is not a review-app command.")


def test_a_spec_label_is_echoed_as_inert_code():
    decision = lifecycle.plan_deploy(
        lifecycle.ConsiderDeploy(MR, SHA, lifecycle.Cause.PIPELINE),
        spec(label="`@all`"),
        None,
        mr_state="opened",
        mr_head_sha=SHA,
    )
    assert decision.reason == "the merge request does not have the `'@all'` label"

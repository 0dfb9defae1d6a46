"""What the MR shows for each record, parsing of incoming payloads, and settings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from review_apps.app_env import environment_name
from review_apps.events import (
    BadEvent,
    MergeRequestEvent,
    NoteEvent,
    OtherEvent,
    PipelineEvent,
    parse_gitlab_event,
    parse_group,
    parse_task_event,
)
from review_apps.lifecycle import StopReason
from review_apps.messages import (
    commit_status_marker,
    digest,
    environment_wanted,
    gitlab_view,
    needs_publish,
    note_marker,
    render_note,
)
from review_apps.model.record import Record
from review_apps.model.values import Status
from review_apps.settings import SettingsError, load_settings
from tests.unit.factories import NOW, SHA2, record

EVENTS = Path(__file__).resolve().parents[2] / "events"


def sample(name: str) -> dict:
    return json.loads((EVENTS / name).read_text())


# --------------------------------------------------------------------------- the note


def test_every_note_carries_the_hidden_marker():
    for status in (Status.DEPLOYING, Status.LIVE, Status.STOPPING, Status.STOPPED, Status.FAILED, Status.REJECTED, ""):
        assert render_note(record(status=status)).startswith(note_marker(14, 3))


def test_deploying_note_says_commit_ttl_and_replacement():
    text = render_note(record(replaced_commit=SHA2))
    assert "deploying" in text and "`aaaaaaaa`" in text and "**30m**" in text and "`bbbbbbbb`" in text


def test_live_note_shows_the_url_and_until_when():
    text = render_note(record(status=Status.LIVE, url="http://10.0.0.7:8000", live_at=NOW))
    assert "**http://10.0.0.7:8000**" in text and "until **2027-01-15 08:30 UTC**" in text


def test_capped_ttl_is_explained():
    text = render_note(record(ttl_seconds=14400, ttl_capped_from=28800))
    assert "you asked for 8h; the install allows at most 4h" in text


@pytest.mark.parametrize(
    ("reason", "detail", "expected", "relaunch"),
    [
        (StopReason.TTL, "", "its time to live (30m) ran out", True),
        (StopReason.MERGED, "", "the merge request was merged", False),
        (StopReason.CLOSED, "", "the merge request was closed", False),
        (StopReason.SPOT, "", "Spot capacity", True),
        (StopReason.CRASHED, "container `web` exited with code 3", "crashed: container `web` exited with code 3", True),
        (StopReason.STOPPED_OUTSIDE, "by ops", "stopped outside review apps: by ops", True),
    ],
)
def test_stopped_note_gives_the_reason_in_plain_words(reason, detail, expected, relaunch):
    text = render_note(
        record(status=Status.STOPPED, stop_reason=reason, stop_detail=detail, live_at=NOW, stopped_at=NOW + 1800)
    )
    assert expected in text
    assert ("To get a new one" in text) is relaunch


def test_relaunch_hint_follows_the_trigger():
    stopped = record(status=Status.STOPPED, stop_reason=StopReason.TTL, trigger="merge_request")
    assert "comment `/review-app deploy` or push a commit." in render_note(stopped)


def test_failed_to_start_gives_a_hint():
    failed = record(status=Status.FAILED, stop_reason=StopReason.FAILED_TO_START, stop_detail="CannotPull…")
    text = render_note(failed)
    assert "could not start" in text and "CannotPull…" in text and "execution role can pull" in text


def test_run_task_failures_are_listed():
    text = render_note(record(status=Status.FAILED, problems=["RESOURCE:FARGATE: capacity"]))
    assert "- RESOURCE:FARGATE: capacity" in text


def test_rejected_note_lists_problems_and_says_nothing_launched():
    text = render_note(record(status=Status.REJECTED, problems=["`ttl`: bad", "`port`: bad"]))
    assert "- `ttl`: bad\n- `port`: bad" in text and "Nothing was launched" in text


def test_live_app_with_a_bad_newer_spec_shows_both():
    text = render_note(record(status=Status.LIVE, url="http://x:1", live_at=NOW, problems=["`ttl`: bad"]))
    assert "live" in text and "latest commit was not deployed" in text


# --------------------------------------------------------------------------- the rest of the MR


def test_gitlab_view_through_a_lifecycle():
    deploying = gitlab_view(record())
    assert (deploying.commit_status.state, deploying.deployment_status) == ("running", "running")
    live = gitlab_view(record(status=Status.LIVE, url="http://u:1", live_at=NOW))
    assert (live.commit_status.state, live.commit_status.target_url, live.environment_url) == (
        "success",
        "http://u:1",
        "http://u:1",
    )
    stopped = gitlab_view(record(status=Status.STOPPED, live_at=NOW, stop_reason=StopReason.TTL, url="http://u:1"))
    assert (stopped.commit_status.state, stopped.commit_status.target_url) == ("success", "http://u:1")
    assert stopped.environment_stopped and stopped.deployment_status == "success"
    canceled = gitlab_view(record(status=Status.STOPPED, stop_reason=StopReason.MERGED))
    assert canceled.commit_status.state == "canceled" and canceled.deployment_status == "canceled"
    failed = gitlab_view(record(status=Status.FAILED, deployment_id=4, environment_id=2))
    assert (failed.commit_status.state, failed.deployment_status, failed.environment_stopped) == (
        "failed",
        "failed",
        True,
    )
    rejected = gitlab_view(record(status=Status.REJECTED))
    assert rejected.commit_status is None and rejected.deployment_status == ""


def test_environment_name_uses_the_branch_slug():
    assert environment_name("Feature/Login_Page") == "review/feature-login-page"


# --------------------------------------------------------------------------- parsing events


def body(name: str) -> dict:
    return json.loads(sample(name)["body"])


def test_samples_parse():
    mr = parse_gitlab_event(body("webhook_merge_request_open.json"))
    assert isinstance(mr, MergeRequestEvent) and mr.action == "open" and not mr.pushed
    assert (mr.mr.project_id, mr.mr.iid, mr.mr.source_branch) == (14, 1, "ms-viewport")
    assert parse_gitlab_event(body("webhook_merge_request_push.json")).pushed
    pipeline = parse_gitlab_event(body("webhook_pipeline_success.json"))
    assert isinstance(pipeline, PipelineEvent) and pipeline.status == "success" and pipeline.mr.iid == 1
    note = parse_gitlab_event(body("webhook_note.json"))
    assert isinstance(note, NoteEvent) and note.text == "/review-app status"
    assert parse_gitlab_event({"object_kind": "push"}) == OtherEvent("push")


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda b: b.pop("object_kind"), "field 'object_kind' is missing"),
        (lambda b: b["object_attributes"].pop("iid"), "field 'object_attributes.iid' is missing"),
        (lambda b: b["object_attributes"].update(iid="7"), "field 'object_attributes.iid' must be int, got str"),
        (lambda b: b["object_attributes"].update(iid=True), "must be int, got bool"),
        (lambda b: b["object_attributes"].pop("last_commit"), "object_attributes.last_commit.id' is missing"),
        (lambda b: b.update(object_attributes=[]), "field 'object_attributes' must be dict"),
    ],
)
def test_bad_mr_payloads_name_the_field(mutate, message):
    payload = body("webhook_merge_request_open.json")
    mutate(payload)
    with pytest.raises(BadEvent, match=message):
        parse_gitlab_event(payload)


def test_gitlab_times_in_both_webhook_formats():
    from review_apps.events import gitlab_time

    assert gitlab_time("2013-12-03T17:23:34Z") == gitlab_time("2013-12-03 17:23:34 UTC") == 1386091414
    assert gitlab_time("2013-12-03T19:23:34+02:00") == 1386091414
    assert gitlab_time(None) == gitlab_time("yesterday") == gitlab_time(5) == 0
    assert parse_gitlab_event(body("webhook_merge_request_open.json")).updated_at == 1386091414


def test_malformed_labels_are_skipped_not_fatal():
    payload = body("webhook_merge_request_open.json")
    payload["changes"]["labels"]["current"] = [{"title": []}, {"title": "ok"}, "nope", {"id": 3}]
    payload["labels"] = [{"title": None}, {"title": "API"}]
    event = parse_gitlab_event(payload)
    assert event.labels == ("API",) and event.labels_added == ("ok",) and event.labels_removed == ("API",)


def test_non_object_body_is_refused():
    with pytest.raises(BadEvent, match="JSON object"):
        parse_gitlab_event([1, 2])


def test_pipeline_mr_fields_are_prefixed():
    payload = body("webhook_pipeline_success.json")
    del payload["merge_request"]["source_branch"]
    with pytest.raises(BadEvent, match="'merge_request.source_branch' is missing"):
        parse_gitlab_event(payload)


def test_task_event_samples_parse():
    running = parse_task_event(sample("task_running.json"))
    assert running.last_status == "RUNNING" and running.private_ip == "10.0.0.139"
    assert running.eni_id == "eni-abcd1234" and running.version == 4 and parse_group(running.group) == (14, 1)
    ttl = parse_task_event(sample("task_stopped_ttl.json"))
    assert ttl.container("web").exit_code == 124 and ttl.stop_code == "EssentialContainerExited"
    pull = parse_task_event(sample("task_stopped_pull_error.json"))
    assert pull.container("web").exit_code is None and pull.stop_code == "TaskFailedToStart"


def test_bad_task_events():
    with pytest.raises(BadEvent, match="not an 'ECS Task State Change'"):
        parse_task_event({"source": "aws.ec2"})
    event = sample("task_running.json")
    event["detail"]["version"] = "4"
    with pytest.raises(BadEvent, match="'version' must be int"):
        parse_task_event(event)


@pytest.mark.parametrize("group", ["family:web", "review-app:1", "review-app:a:1", "review-app:1:2:3", ""])
def test_foreign_groups(group):
    assert parse_group(group) is None


def test_record_round_trips_through_an_item():
    original = record(problems=["x"], note_id=5)
    item = {k: (str(v) if isinstance(v, int) and k == "rev" else v) for k, v in original.to_item().items()}
    item["pk"] = "mr#14/3"
    assert Record.from_item(item) == original


# --------------------------------------------------------------------------- settings

ENV = {
    "GITLAB_URL": "https://gitlab.example.com/",
    "GITLAB_TOKEN_PARAMETER": "/ra/token",
    "WEBHOOK_SECRET_PARAMETER": "/ra/secret",
    "TABLE_NAME": "t",
    "CLUSTER": "review-apps",
    "SUBNETS": "subnet-1, subnet-2",
    "SECURITY_GROUPS": "sg-1",
    "INSTALL_ID": "review-apps",
    "SCHEDULE_GROUP": "review-apps",
    "SCHEDULER_ROLE_ARN": "arn:aws:iam::111122223333:role/review-apps-deadlines",
}


def test_settings_defaults_and_parsing():
    settings = load_settings(ENV)
    assert settings.gitlab_url == "https://gitlab.example.com"
    assert settings.subnets == ("subnet-1", "subnet-2") and not settings.assign_public_ip
    assert (settings.default_ttl, settings.max_ttl) == (1800, 14400)
    assert (settings.max_running, settings.max_running_per_project) == (0, 0)  # no caps unless set
    capped = load_settings({**ENV, "MAX_RUNNING_APPS": "20", "MAX_RUNNING_APPS_PER_PROJECT": " 3 "})
    assert (capped.max_running, capped.max_running_per_project) == (20, 3)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"GITLAB_URL": ""}, "GITLAB_URL is not set"),
        ({"GITLAB_URL": "gitlab.example.com"}, "must start with http"),
        ({"SUBNETS": " , "}, "SUBNETS must list at least one value"),
        ({"ASSIGN_PUBLIC_IP": "yes"}, "ENABLED or DISABLED"),
        ({"DEFAULT_TTL": "forever"}, "DEFAULT_TTL='forever'"),
        ({"DEFAULT_TTL": "5h", "MAX_TTL": "1h"}, "longer than MAX_TTL"),
        ({"MAX_RUNNING_APPS": "-1"}, "MAX_RUNNING_APPS must be a whole number"),
        ({"MAX_RUNNING_APPS_PER_PROJECT": "ten"}, "MAX_RUNNING_APPS_PER_PROJECT must be a whole number"),
    ],
)
def test_bad_settings_name_the_variable(change, message):
    with pytest.raises(SettingsError, match=message):
        load_settings({**ENV, **change})


def test_live_note_shows_the_cost_rate_and_stopped_note_the_total():
    costed = dict(cpu_units=256, memory_mib=512, architecture="x86_64", capacity="on_demand", rate_microusd=12343)
    live = render_note(record(status=Status.LIVE, url="http://10.0.0.7:8000", live_at=NOW, **costed))
    assert "Costs about $0.0123/hour (0.25 vCPU, 0.5 GB, x86_64, on demand)." in live
    stopped = render_note(
        record(status=Status.STOPPED, stop_reason=StopReason.TTL, live_at=NOW, stopped_at=NOW + 1800, **costed)
    )
    assert "It ran for 30m and cost about $0.0062 (0.25 vCPU, 0.5 GB, x86_64, on demand)." in stopped
    spot = render_note(
        record(status=Status.LIVE, url="http://x:1", live_at=NOW, public_ip=True, **{**costed, "capacity": "spot"})
    )
    assert "Fargate Spot (AWS may interrupt it), public IPv4" in spot
    assert "Costs about" not in render_note(record(status=Status.LIVE, url="http://x:1", live_at=NOW))


def test_queued_and_left_queue_notes():
    waiting = record(
        status=Status.QUEUED,
        task_arn="",
        queue_place=3,
        queued_at=NOW,
        launched_at=0,
        queue_detail="this install runs at most 2 review apps at once",
    )
    note = render_note(waiting)
    assert "Review app: queued" in note and "**number 3** in the queue" in note
    assert "this install runs at most 2 review apps at once" in note and "starts by itself" in note
    view = gitlab_view(waiting)
    assert view.commit_status.state == "pending" and view.deployment_status == "" and not view.environment_stopped
    left = record(status=Status.STOPPED, task_arn="", queued_at=NOW, launched_at=0, stop_reason=StopReason.CLOSED)
    note = render_note(left)
    assert "taken out of the queue" in note and "never started" in note and "was closed" in note
    assert "To get a new one" not in note  # closed: no relaunch hint
    assert gitlab_view(left).commit_status.state == "canceled"


def test_an_extended_app_says_so_next_to_its_end_time():
    live = record(
        status=Status.LIVE, url="http://x:1", live_at=NOW, ttl_seconds=5400, extended_seconds=3600, deadline=NOW + 5400
    )
    assert "until **2027-01-15 09:30 UTC** (1h30m, extended by 1h)." in render_note(live)
    assert gitlab_view(live).commit_status.description == "Review app live until 2027-01-15 09:30 UTC"


def published(rec: Record) -> Record:
    """`rec` as it is once GitLab shows everything it should."""
    view = gitlab_view(rec)
    rec.note_digest = digest(render_note(rec))
    if view.commit_status:
        rec.commit_status = commit_status_marker(rec, view.commit_status)
    rec.deployment_status = view.deployment_status
    rec.environment_state = environment_wanted(view) or rec.environment_state
    return rec


@pytest.mark.parametrize(
    "behind",
    [
        {"note_digest": "stale"},
        {"commit_status": "old:running:0"},
        {"deployment_status": "running"},
        {"environment_state": "available:http://old:1"},
    ],
)
def test_any_part_of_the_mr_behind_the_record_needs_a_publish(behind):
    live = published(record(status=Status.LIVE, url="http://x:1", live_at=NOW, environment_id=5, deployment_id=6))
    assert not needs_publish(live)
    for field_name, value in behind.items():
        setattr(live, field_name, value)
    assert needs_publish(live)


def test_a_stopped_app_needs_its_environment_stopped_once():
    done = published(
        record(
            status=Status.STOPPED,
            live_at=NOW,
            stopped_at=NOW + 60,
            environment_id=5,
            environment_state="available:http://x:1",
        )
    )
    done.environment_state = "available:http://x:1"
    assert needs_publish(done)
    done.environment_state = "stopped"
    assert not needs_publish(done)


@pytest.mark.parametrize(
    ("username", "kept"),
    [("alice", "alice"), ("a.b-c_d", "a.b-c_d"), ("eve @all", ""), ("`x`", ""), ("[x](y)", ""), ("", "")],
)
def test_a_comment_authors_name_is_kept_only_in_gitlabs_character_set(username, kept):
    body = sample("webhook_note.json")
    payload = json.loads(body["body"])
    payload["user"]["username"] = username
    assert parse_gitlab_event(payload).author == kept

"""/review-app commands on the MR, through the real handlers and the GitLab members API."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from local.world import PROJECT_ID, TABLE, World
from review_apps.durations import format_utc

SHA1 = "7" * 40
DEVELOPER, REPORTER = 51, 52


def setup(world: World, spec: str = "task_definition: shop-web\ntrigger: merge_request\n") -> None:
    project = world.gitlab.state.projects[PROJECT_ID]
    project.members.update({DEVELOPER: 30, REPORTER: 20})
    world.commit(SHA1, spec=spec)


def review_notes(world: World) -> int:
    return len([n for n in world.notes(1) if "review-app:note" in n["body"]])


def test_stop_then_deploy_again(world: World):
    setup(world)
    world.open_mr(1, SHA1)
    [task] = world.tasks()
    world.task_event(task["taskArn"], "RUNNING")
    assert world.comment(1, "/review-app stop")["status"] == 202
    assert world.task(task["taskArn"])["lastStatus"] == "STOPPED"
    world.task_event(task["taskArn"], "STOPPED", exit_codes={"web": 143}, stop_code="UserInitiated")
    assert "@alice stopped it with `/review-app stop`" in world.note(1)
    assert world.comment(1, "/review-app deploy")["status"] == 202
    [again] = world.tasks()
    assert again["taskArn"] != task["taskArn"] and "deploying" in world.note(1)
    assert review_notes(world) == 1


def test_deploy_relaunches_a_running_app_and_ignores_the_trigger(world: World):
    setup(world, "task_definition: shop-web\n")  # trigger: pipeline
    world.gitlab.state.open_merge_request(PROJECT_ID, 1, sha=SHA1, source_branch="feature/c")
    assert world.comment(1, "/review-app deploy")["status"] == 202
    [first] = world.tasks()
    assert world.comment(1, "/review-app deploy")["status"] == 202
    [second] = world.tasks()
    assert second["taskArn"] != first["taskArn"]


def test_status_help_and_unknown_commands_answer_in_the_one_note(world: World):
    setup(world)
    world.open_mr(1, SHA1)
    world.comment(1, "/review-app status")
    assert "> @alice: the review app for commit `77777777` is deploying." in world.note(1)
    world.comment(1, "/review-app help")
    assert "`/review-app stop` stops it" in world.note(1) and "is deploying" not in world.note(1)
    world.comment(1, "/review-app dance")
    assert "`dance` is not a review-app command" in world.note(1)
    assert review_notes(world) == 1


def test_non_members_and_reporters_get_a_polite_refusal(world: World):
    setup(world)
    world.open_mr(1, SHA1)
    [task] = world.tasks()
    for user_id, name in ((REPORTER, "rita"), (99_999, "stranger")):
        answer = world.comment(1, "/review-app stop", user_id=user_id, username=name)
        assert answer["status"] == 200
        assert f"@{name}, sorry: only members of this project with Developer access or more" in world.note(1)
    assert world.task(task["taskArn"])["lastStatus"] != "STOPPED"
    assert ("GET", "/projects/:id/members/all/:user_id") in world.gitlab.state.requests


def test_nothing_to_stop_and_nothing_to_deploy_are_answered(world: World):
    setup(world, spec=None)
    world.gitlab.state.open_merge_request(PROJECT_ID, 1, sha=SHA1, source_branch="feature/c")
    world.comment(1, "/review-app stop")
    assert "there is no running review app to stop" in world.note(1)
    world.comment(1, "/review-app deploy")
    assert "nothing was deployed: no .gitlab/review-app.yml at this commit" in world.note(1)


def test_ordinary_comments_change_nothing(world: World):
    setup(world)
    world.gitlab.state.open_merge_request(PROJECT_ID, 1, sha=SHA1, source_branch="feature/c")
    answer = world.comment(1, "LGTM, thanks!")
    assert answer["status"] == 200 and world.note(1) is None and world.gitlab.state.requests == []


def test_extend_moves_the_end_time_on_the_note_and_the_reconciler_keeps_to_it(world: World):
    setup(world, "task_definition: shop-web\ntrigger: merge_request\nttl: 1h\n")
    world.open_mr(1, SHA1)
    [task] = world.tasks()
    world.task_event(task["taskArn"], "RUNNING")
    first_deadline = int(world.record(1)["deadline"])
    until = format_utc(first_deadline)
    assert f"until **{until}** (1h)" in world.note(1)

    assert world.comment(1, "/review-app extend 90m")["status"] == 200
    later = format_utc(first_deadline + 5400)
    note = world.note(1)
    assert f"until **{later}** (2h30m, extended by 1h30m)" in note
    assert f"> @alice: extended by 1h30m; the app now stops at {later}." in note
    assert world.record(1)["deadline"] == first_deadline + 5400
    assert [s["description"] for s in world.commit_statuses(SHA1)][-1] == f"Review app live until {later}"
    # The deadline's schedule moved with it: Scheduler stops the app at the new time.
    moved = datetime.fromtimestamp(first_deadline + 5400, tz=UTC).strftime("at(%Y-%m-%dT%H:%M:%S)")
    assert world.schedules()[f"mr-{PROJECT_ID}-1"]["ScheduleExpression"] == moved

    # The old end time passing changes nothing; the new one ends the app.
    world.dynamodb.update_item(  # an hour later (the functions read the real clock)
        TableName=TABLE,
        Key={"pk": {"S": f"mr#{PROJECT_ID}/1"}},
        UpdateExpression="SET deadline = :d",
        ExpressionAttributeValues={":d": {"N": str(int(time.time()) + 1800)}},
    )
    assert world.reconcile()["stopped"] == 0
    world.time_passes(1)
    assert world.reconcile()["stopped"] == 1
    assert world.task(task["taskArn"])["lastStatus"] == "STOPPED"
    assert review_notes(world) == 1


def test_extend_is_capped_and_refused_when_nothing_runs(world: World):
    setup(world, "task_definition: shop-web\ntrigger: merge_request\nttl: 3h\n")
    world.open_mr(1, SHA1)
    [task] = world.tasks()
    world.task_event(task["taskArn"], "RUNNING")
    world.comment(1, "/review-app extend 5h")
    note = world.note(1)
    assert "extended by 1h;" in note and "(Capped: this install allows at most 4h in all.)" in note
    world.comment(1, "/review-app extend 10m")
    assert "already has this install's maximum time to live (4h)" in world.note(1)
    world.comment(1, "/review-app extend a bit")
    assert "say how much longer, e.g. `/review-app extend 1h`" in world.note(1)
    world.comment(1, "/review-app extend 1h", user_id=REPORTER, username="rita")
    assert "only members of this project with Developer access or more" in world.note(1)
    assert world.record(1)["ttl_seconds"] == 4 * 3600

    world.comment(1, "/review-app stop")
    world.task_event(task["taskArn"], "STOPPED", exit_codes={"web": 143}, stop_code="UserInitiated")
    world.comment(1, "/review-app extend 1h")
    assert "there is no running review app to extend" in world.note(1)
    assert review_notes(world) == 1

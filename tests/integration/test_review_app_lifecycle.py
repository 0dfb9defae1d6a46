"""A review app's whole life through the real handlers, against moto and the GitLab stand-in."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from local.aws_calls import AwsCallCounter
from local.events import task_state_change
from local.world import BASE_FAMILY, PROJECT_ID, World

SHA1 = "1" * 40
SHA2 = "2" * 40
ON_OPEN = "task_definition: shop-web\ntrigger: merge_request\nttl: 45m\n"
ENV = "review/feature-checkout"


def derived_task_definitions(world: World) -> list[str]:
    # familyPrefix takes a whole family name, so list every active revision and filter.
    arns = world.ecs.list_task_definitions(status="ACTIVE")["taskDefinitionArns"]
    return [arn for arn in arns if ":task-definition/review-app_" in arn]


def test_mr_opened_with_trigger_merge_request_launches_one_task_with_its_deadline(world: World):
    world.commit(SHA1, spec=ON_OPEN)
    answer = world.open_mr(1, SHA1)
    assert answer["status"] == 202

    tasks = world.tasks()
    assert len(tasks) == 1
    task = tasks[0]
    assert task["group"] == f"review-app:{PROJECT_ID}:1"
    assert task["launchType"] == "FARGATE"
    assert task["startedBy"] == world.record(1)["launch_id"]
    tags = {t["key"]: t["value"] for t in world.ecs.list_tags_for_resource(resourceArn=task["taskArn"])["tags"]}
    assert tags["review-app:project"] == str(PROJECT_ID) and tags["review-app:mr"] == "1"
    assert tags["review-app:commit"] == SHA1
    eni = {d["name"]: d["value"] for d in task["attachments"][0]["details"]}
    assert eni["subnetId"] == world.subnet

    definition = world.ecs.describe_task_definition(taskDefinition=task["taskDefinitionArn"])["taskDefinition"]
    assert definition["family"] == f"review-app_review-apps-local_{PROJECT_ID}-1"
    assert {"key": "review-apps:install", "value": "review-apps-local"} in world.ecs.list_tags_for_resource(
        resourceArn=task["taskDefinitionArn"]
    )["tags"]
    web = definition["containerDefinitions"][0]
    # The definition names no entrypoint (it is in the image), so wrapping the command in
    # `timeout` would replace it: the app runs as the team runs it, and a schedule ends it.
    assert "entryPoint" not in web and web["command"] == ["gunicorn", "--bind", "0.0.0.0:8000", "shop.wsgi"]
    record = world.record(1)
    assert record["deadline"] - record["launched_at"] == 2700 and not record["timeout_wrapped"]
    schedule = world.schedules()[f"mr-{PROJECT_ID}-1"]
    assert schedule["ScheduleExpression"] == at(record["deadline"]) and schedule["ActionAfterCompletion"] == "DELETE"
    assert json.loads(schedule["Target"]["Input"])["Task"] == task["taskArn"]
    # The team's own family is untouched: no new revision appears under their services.
    assert world.ecs.list_task_definitions(familyPrefix=BASE_FAMILY)["taskDefinitionArns"][-1].endswith(":1")

    note = world.note(1)
    assert "Review app: deploying" in note and "`11111111`" in note and "**45m**" in note
    assert "wrapping would replace it" in world.record(1)["unwrapped_because"]
    assert "timeout" not in note and "EventBridge" not in note  # no operator jargon on the MR
    assert len(world.notes(1)) == 1


def at(epoch) -> str:
    return "at(" + datetime.fromtimestamp(int(epoch), tz=UTC).strftime("%Y-%m-%dT%H:%M:%S") + ")"


def test_a_known_entrypoint_is_wrapped_in_timeout_as_a_second_deadline(world: World):
    container = {
        "name": "web",
        "image": "111122223333.dkr.ecr.us-east-1.amazonaws.com/shop:latest",
        "memory": 512,
        "entryPoint": ["/docker-entrypoint.sh"],
        "command": ["gunicorn", "shop.wsgi"],
        "portMappings": [{"containerPort": 8000}],
    }
    world.register_base_task_definition(family="shop-entry", containerDefinitions=[container])
    world.commit(SHA1, spec="task_definition: shop-entry\ntrigger: merge_request\nttl: 45m\n")
    world.open_mr(1, SHA1)
    [task] = world.tasks()
    web = world.ecs.describe_task_definition(taskDefinition=task["taskDefinitionArn"])["taskDefinition"][
        "containerDefinitions"
    ][0]
    # `timeout` at the install's MAX_TTL (4h): the furthest any deadline can move.
    assert web["entryPoint"] == ["timeout", "-k", "30", "14400"]
    assert web["command"] == ["/docker-entrypoint.sh", "gunicorn", "shop.wsgi"]
    assert world.record(1)["timeout_wrapped"] and "timeout" not in world.note(1)


def test_the_deadline_schedule_stops_the_app_and_the_note_says_its_time_ran_out(world: World):
    world.commit(SHA1, spec=ON_OPEN)
    world.open_mr(1, SHA1)
    [task] = world.tasks()
    world.task_event(task["taskArn"], "RUNNING")
    record = world.record(1)
    schedule = world.schedules()[f"mr-{PROJECT_ID}-1"]
    assert schedule["ScheduleExpression"] == at(record["deadline"])  # moved to live_at + TTL
    request = world.fire_schedule(f"mr-{PROJECT_ID}-1")
    stopped = world.task(task["taskArn"])
    assert stopped["lastStatus"] == "STOPPED" and request["Task"] == task["taskArn"]
    event = task_state_change(
        stopped,
        last_status="STOPPED",
        version=9,
        stop_code="UserInitiated",
        stopped_reason=request["Reason"],
        exit_codes={"web": 143},
    )
    world.deliver_task_event(event)
    assert "its time to live (45m) ran out" in world.note(1)


def test_successful_pipeline_launches_the_commit_with_its_image(world: World):
    world.commit(SHA1)  # the default spec: trigger pipeline, image tagged with the commit
    assert "waiting for this commit's pipeline" in world.open_mr(1, SHA1)["body"]["message"]
    assert world.tasks() == [] and world.note(1) is None

    assert "pipeline status is 'running'" in world.pipeline(1, status="running")["body"]["message"]
    assert world.pipeline(1)["status"] == 202
    [task] = world.tasks()
    definition = world.ecs.describe_task_definition(taskDefinition=task["taskDefinitionArn"])["taskDefinition"]
    assert definition["containerDefinitions"][0]["image"].endswith(f"/shop:{SHA1}")
    assert world.record(1)["commit_sha"] == SHA1


def test_running_event_publishes_the_url_everywhere(world: World):
    world.commit(SHA1, spec=ON_OPEN)
    world.open_mr(1, SHA1)
    [task] = world.tasks()
    assert world.task_event(task["taskArn"], "PENDING")["result"] == "deploying"  # a phase: the note says it
    assert "Now: Fargate is finding capacity for the task…" in world.note(1)
    assert world.task_event(task["taskArn"], "RUNNING")["result"] == "live"

    ip = {d["name"]: d["value"] for d in task["attachments"][0]["details"]}["privateIPv4Address"]
    url = f"http://{ip}:8000"
    note = world.note(1)
    assert "Review app: live" in note and f"**{url}**" in note and "until **" in note
    env = world.environment(ENV)
    assert env["external_url"] == url and env["state"] == "available"
    [deployment] = world.deployments()
    assert deployment["status"] == "success" and deployment["sha"] == SHA1
    assert deployment["environment"]["name"] == ENV
    [status] = world.commit_statuses(SHA1)
    assert (status["name"], status["status"], status["target_url"]) == ("review-app", "success", url)
    assert len(world.notes(1)) == 1


def test_push_replaces_the_task_and_edits_the_same_note(world: World):
    world.commit(SHA1, spec=ON_OPEN)
    world.open_mr(1, SHA1)
    [first] = world.tasks()
    world.task_event(first["taskArn"], "RUNNING")
    first_definition = first["taskDefinitionArn"]

    world.commit(SHA2, spec=ON_OPEN)
    assert world.push(1, SHA2)["status"] == 202

    old = world.task(first["taskArn"])
    assert old["lastStatus"] == "STOPPED" and old["stoppedReason"] == "Review app replaced by commit 22222222"
    [second] = world.tasks()
    assert second["taskArn"] != first["taskArn"]
    assert world.record(1)["commit_sha"] == SHA2
    assert derived_task_definitions(world) == [second["taskDefinitionArn"]]
    assert first_definition not in derived_task_definitions(world)

    note = world.note(1)
    assert "deploying" in note and "`22222222`" in note and "replaces the app for commit `11111111`" in note
    assert len(world.notes(1)) == 1

    # The old task's own STOPPED event arrives later: it must not touch the new app.
    assert world.task_event(first["taskArn"], "STOPPED", exit_codes={"web": 143})["result"] == "ignored"
    assert world.record(1)["status"] == "deploying"


def test_label_edit_changes_nothing(world: World):
    world.commit(SHA1, spec=ON_OPEN)
    world.open_mr(1, SHA1)
    before = (world.tasks(), world.note(1), world.record(1)["rev"])
    answer = world.send_mr(1, "update")
    assert answer["status"] == 200 and "without new commits" in answer["body"]["message"]
    assert (world.tasks(), world.note(1), world.record(1)["rev"]) == before


def test_ttl_expiry_says_so_and_stops_the_environment(world: World):
    world.commit(SHA1, spec=ON_OPEN)
    world.open_mr(1, SHA1)
    [task] = world.tasks()
    world.task_event(task["taskArn"], "RUNNING")
    assert world.expire(task["taskArn"])["result"] == "stopped"

    note = world.note(1)
    assert "Review app: stopped" in note and "time to live (45m) ran out" in note
    assert "comment `/review-app deploy` or push a commit" in note
    assert world.environment(ENV)["state"] == "stopped"
    assert world.deployments()[0]["status"] == "success"
    assert derived_task_definitions(world) == []
    assert len(world.notes(1)) == 1


def test_merge_and_close_stop_the_task_and_say_why(world: World):
    world.commit(SHA1, spec=ON_OPEN)
    for iid, action, word in ((1, "merge", "merged"), (2, "close", "closed")):
        world.open_mr(iid, SHA1, branch=f"feature/{iid}")
        task = next(t for t in world.tasks() if t["group"].endswith(f":{iid}"))
        world.task_event(task["taskArn"], "RUNNING")
        assert world.send_mr(iid, action)["status"] == 202
        stopped = world.task(task["taskArn"])
        assert stopped["lastStatus"] == "STOPPED"
        assert stopped["stoppedReason"] == f"Review app stopped: merge request {word}"
        assert f"mr-{PROJECT_ID}-{iid}" not in world.schedules()  # its deadline goes with it
        assert "Review app: stopping" in world.note(iid) and f"merge request was {word}" in world.note(iid)

        world.task_event(task["taskArn"], "STOPPED", exit_codes={"web": 143}, stop_code="UserInitiated")
        note = world.note(iid)
        assert "Review app: stopped" in note and f"the merge request was {word}" in note
        assert "To get a new one" not in note
        assert world.environment(f"review/feature-{iid}")["state"] == "stopped"
    assert world.tasks() == []


def test_invalid_spec_is_explained_and_launches_nothing(world: World):
    world.commit(SHA1, spec="task_definition: shop-web\ntrigger: merge_request\nttl: forever\nport: 0\n")
    answer = world.open_mr(1, SHA1)
    assert answer["status"] == 200 and len(answer["body"]["problems"]) == 2
    note = world.note(1)
    assert "Review app: not deployed" in note
    assert "`ttl:` `forever` is not a duration" in note and "`port:` `0` must be a number from 1 to 65535" in note
    assert world.tasks() == [] and derived_task_definitions(world) == []
    # Redelivery of the same commit does not post the problems again.
    world.send_mr(1, "reopen")
    assert len(world.notes(1)) == 1


def test_task_definition_problems_are_explained(world: World):
    world.commit(SHA1, spec="task_definition: no-such-family\ntrigger: merge_request\n")
    world.open_mr(1, SHA1)
    assert "Task definition `no-such-family` cannot be used by this project" in world.note(1)
    world.register_base_task_definition(
        family="no-command",
        containerDefinitions=[{"name": "web", "image": "shop", "memory": 512, "portMappings": [{"containerPort": 80}]}],
    )
    world.commit(SHA2, spec="task_definition: no-command\ntrigger: merge_request\nwrap_in_timeout: true\n")
    world.push(1, SHA2)
    assert "the command to wrap in `timeout` is unknown" in world.note(1)
    assert world.tasks() == [] and derived_task_definitions(world) == []


def test_no_spec_means_nothing_happens(world: World):
    world.commit(SHA1, spec=None)
    answer = world.open_mr(1, SHA1)
    assert answer["status"] == 200 and "no .gitlab/review-app.yml" in answer["body"]["message"]
    assert world.tasks() == [] and world.note(1) is None and world.record(1) is None


def test_crash_and_failed_start_are_explained(world: World):
    world.commit(SHA1, spec=ON_OPEN)
    world.open_mr(1, SHA1)
    [task] = world.tasks()
    world.task_event(
        task["taskArn"],
        "STOPPED",
        stop_code="TaskFailedToStart",
        stopped_reason="CannotPullContainerError: pull image manifest: not found",
    )
    note = world.note(1)
    assert "could not start" in note and "CannotPullContainerError" in note
    assert world.commit_statuses(SHA1)[-1]["status"] == "failed"
    assert world.deployments()[-1]["status"] == "failed"

    world.commit(SHA2, spec=ON_OPEN)
    world.push(1, SHA2)
    [task] = world.tasks()
    world.task_event(task["taskArn"], "RUNNING")
    world.task_event(
        task["taskArn"],
        "STOPPED",
        exit_codes={"web": 1},
        stop_code="EssentialContainerExited",
        stopped_reason="Essential container in task exited",
    )
    assert "the app crashed: container `web` exited with code 1" in world.note(1)


def test_run_task_errors_are_reported_on_the_mr(make_world):
    world = make_world(SUBNETS="subnet-0deadbeef")
    world.commit(SHA1, spec=ON_OPEN)
    answer = world.open_mr(1, SHA1)
    assert answer["status"] == 200 and "could not start" in answer["body"]["message"]
    note = world.note(1)
    assert "Review app: could not start" in note and "subnet-0deadbeef" in note
    assert derived_task_definitions(world) == []
    assert world.record(1)["status"] == "failed"


def test_public_ip_missing_is_said_on_the_mr(make_world):
    world = make_world(ASSIGN_PUBLIC_IP="ENABLED")
    world.commit(SHA1, spec=ON_OPEN)
    world.open_mr(1, SHA1)
    [task] = world.tasks()
    world.task_event(task["taskArn"], "RUNNING")
    assert "No public IP was assigned" in world.note(1)


def test_stale_and_duplicate_task_events_change_nothing(world: World):
    world.commit(SHA1, spec=ON_OPEN)
    world.open_mr(1, SHA1)
    [task] = world.tasks()
    from local.events import task_state_change

    description = world.task(task["taskArn"])
    running = task_state_change(description, last_status="RUNNING", version=4)
    stopped = task_state_change(description, last_status="STOPPED", version=9, exit_codes={"web": 124})
    world.deliver_task_event(stopped)
    final = world.note(1)
    for event in (running, stopped, running):
        assert world.deliver_task_event(event)["result"] == "ignored"
    assert world.note(1) == final and "time to live" in final


def test_a_lost_record_does_not_make_a_second_note(world: World):
    world.commit(SHA1, spec=ON_OPEN)
    world.open_mr(1, SHA1)
    world.dynamodb.delete_item(TableName="review-apps-records", Key={"pk": {"S": f"mr#{PROJECT_ID}/1"}})
    world.send_mr(1, "reopen")
    assert len(world.notes(1)) == 1 and "deploying" in world.note(1)


def test_events_of_other_clusters_and_groups_are_ignored(world: World):
    world.commit(SHA1, spec=ON_OPEN)
    world.open_mr(1, SHA1)
    [task] = world.tasks()
    from local.events import task_state_change

    event = task_state_change(world.task(task["taskArn"]), last_status="RUNNING", version=5)
    foreign_cluster = {**event, "detail": {**event["detail"], "clusterArn": "arn:aws:ecs:us-east-1:1:cluster/other"}}
    foreign_group = {**event, "detail": {**event["detail"], "group": "family:shop-web"}}
    for foreign in (foreign_cluster, foreign_group):
        assert world.deliver_task_event(foreign)["result"] == "ignored"
    assert world.record(1)["status"] == "deploying"


def test_a_late_open_event_does_not_bring_back_an_older_commit(world: World):
    from datetime import datetime, timedelta

    from local.events import merge_request_hook

    world.commit(SHA1, spec=ON_OPEN)
    world.commit(SHA2, spec=ON_OPEN)
    world.gitlab.state.open_merge_request(PROJECT_ID, 1, sha=SHA2, source_branch="feature/checkout")
    now = datetime.now(UTC)
    push = merge_request_hook(
        "update",
        project_id=PROJECT_ID,
        iid=1,
        sha=SHA2,
        source_branch="feature/checkout",
        project_path="awesome_space/awesome_project",
        oldrev=SHA1,
        updated_at=now,
    )
    late_open = merge_request_hook(
        "open",
        project_id=PROJECT_ID,
        iid=1,
        sha=SHA1,
        source_branch="feature/checkout",
        project_path="awesome_space/awesome_project",
        updated_at=now - timedelta(minutes=1),
    )
    assert world.deliver(push, "Merge Request Hook")["status"] == 202
    answer = world.deliver(late_open, "Merge Request Hook")
    assert answer["status"] == 200 and "older than one already applied" in answer["body"]["message"]
    [task] = world.tasks()
    assert world.record(1)["commit_sha"] == SHA2 and world.record(1)["task_arn"] == task["taskArn"]


def test_events_that_change_nothing_make_no_gitlab_call(world: World):
    world.commit(SHA1, spec=ON_OPEN)
    world.open_mr(1, SHA1)
    [task] = world.tasks()
    world.task_event(task["taskArn"], "PROVISIONING")  # the first phase is said once on the MR
    # The same phase again, late and repeated: nothing new for the MR.
    events_ = [
        task_state_change(world.task(task["taskArn"]), last_status=s, version=v)
        for v, s in ((3, "PENDING"), (4, "PROVISIONING"), (2, "PENDING"))
    ]
    world.cold_start()  # a fresh container: nothing cached, clients made on first use
    calls = len(world.gitlab.state.requests)
    with AwsCallCounter() as aws:
        for event in events_:
            assert world.deliver_task_event(event)["result"] == "ignored"
    assert len(world.gitlab.state.requests) == calls
    assert dict(aws.calls) == {"dynamodb:GetItem": 3}  # the record, and nothing else (no token read)

"""Never lose track of a review app: events in any order and any number of times, the
reconciler as a backstop, nothing left behind, and faults survived."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from local import events, fault_proxy
from local.lambda_runtime import LambdaContext, load_handler
from local.world import CLUSTER, INSTALL_ID, PROJECT_ID, TABLE, World

ON_OPEN = "task_definition: shop-web\ntrigger: merge_request\nttl: 30m\n"
LIFECYCLE = (
    "PROVISIONING",
    "PENDING",
    "ACTIVATING",
    "RUNNING",
    "DEACTIVATING",
    "STOPPING",
    "DEPROVISIONING",
    "STOPPED",
)
SHUFFLED_MRS = 30


def sha(n: int) -> str:
    return f"{n:040x}"


def launch(world: World, iid: int, commit: int | None = None) -> dict:
    world.commit(sha(commit or iid), spec=ON_OPEN)
    world.open_mr(iid, sha(commit or iid), branch=f"feature/{iid}")
    [task] = [t for t in world.tasks() if t["group"] == f"review-app:{PROJECT_ID}:{iid}"]
    return task


def open_environments(world: World) -> list[dict]:
    return [e for e in world.gitlab.state.environments.get(PROJECT_ID, []) if e["state"] != "stopped"]


def derived_definitions(world: World) -> list[str]:
    return [a for a in world.ecs.list_task_definitions(status="ACTIVE")["taskDefinitionArns"] if "/review-app_" in a]


# --------------------------------------------------------------------------- any order, any number of times


@pytest.mark.parametrize("ending", ["ttl", "crash"])
def test_shuffled_and_duplicated_events_always_end_the_same(world: World, tally, ending):
    rng = random.Random(f"review-apps-{ending}")
    for iid in range(1, SHUFFLED_MRS + 1):
        task = world.task(launch(world, iid)["taskArn"])
        started_at = datetime(2026, 11, 26, 9, 0, tzinfo=UTC) + timedelta(minutes=iid)
        stopped_at = started_at + timedelta(minutes=30 if ending == "ttl" else 3)
        exit_code = 124 if ending == "ttl" else 3
        lifecycle = [
            events.task_state_change(
                task,
                last_status=status,
                version=version + 1,
                started_at=started_at,
                stopped_at=stopped_at,
                exit_codes={"web": exit_code} if status == "STOPPED" else None,
            )
            for version, status in enumerate(LIFECYCLE)
        ]
        deliveries = [event for event in lifecycle for _ in range(rng.randint(1, 3))]
        rng.shuffle(deliveries)
        for event in deliveries:
            world.deliver_task_event(event)
        tally["events shuffled"] += len(deliveries)
        tally["lifecycles run"] += 1

        note = world.note(iid)
        started = started_at.strftime("%Y-%m-%d %H:%M UTC")
        assert "Review app: stopped" in note, note
        if ending == "ttl":
            assert "time to live (30m) ran out" in note
        else:
            assert "the app crashed: container `web` exited with code 3" in note
        assert f"It ran from {started} to {stopped_at.strftime('%Y-%m-%d %H:%M UTC')}" in note
        assert world.environment(f"review/feature-{iid}")["state"] == "stopped"
        [deployment] = [d for d in world.deployments() if d["ref"] == f"feature/{iid}"]
        assert deployment["status"] == "success"
        assert world.commit_statuses(sha(iid))[-1]["status"] == "success"
        assert world.record(iid)["status"] == "stopped"
    assert derived_definitions(world) == []


# --------------------------------------------------------------------------- the reconciler


def test_reconciler_finishes_an_app_whose_stop_event_was_lost(world: World, tally):
    task = launch(world, 1)
    world.task_event(task["taskArn"], "RUNNING")
    world.ecs.stop_task(cluster=CLUSTER, task=task["taskArn"], reason="Essential container in task exited")
    summary = world.reconcile()
    assert summary["finished"] == 1
    assert "Review app: stopped" in world.note(1) and world.record(1)["status"] == "stopped"
    assert open_environments(world) == [] and derived_definitions(world) == []
    assert world.reconcile()["finished"] == 0  # nothing left to heal
    tally["lost events healed"] += 1


def test_reconciler_ends_an_app_at_its_deadline(world: World, tally):
    """The TTL is a deadline the reconciler enforces (the container's timer is only the backstop
    at MAX_TTL), so the app stops on time however long its `timeout` would still allow."""
    task = launch(world, 1)
    world.task_event(task["taskArn"], "RUNNING")
    assert world.reconcile()["stopped"] == 0  # not yet
    world.time_passes(1)
    assert world.reconcile()["stopped"] == 1
    assert world.reconcile()["stopped"] == 0  # asked once: the record says it is stopping
    stopped = world.task(task["taskArn"])
    assert stopped["lastStatus"] == "STOPPED" and "end of its time to live" in stopped["stoppedReason"]
    world.task_event(
        task["taskArn"],
        "STOPPED",
        exit_codes={"web": 143},
        stop_code="UserInitiated",
        stopped_reason=stopped["stoppedReason"],
    )
    note = world.note(1)
    assert "Review app: stopped" in note and "its time to live (30m) ran out." in note
    tally["overdue tasks stopped"] += 1


def test_reconciler_stops_orphans_and_finishes_interrupted_launches(world: World, tally):
    task = launch(world, 1)
    definition = task["taskDefinitionArn"]
    # An orphan: a task this install started (its tag says so) that no record owns.
    orphan = world.ecs.run_task(
        cluster=CLUSTER,
        taskDefinition=definition,
        launchType="FARGATE",
        group=f"review-app:{PROJECT_ID}:99",
        networkConfiguration={
            "awsvpcConfiguration": {"subnets": [world.subnet], "securityGroups": [world.security_group]}
        },
        tags=[{"key": "review-apps:install", "value": INSTALL_ID}],
    )["tasks"][0]["taskArn"]
    # An interrupted launch: claimed, then the Lambda died before RunTask.
    world.commit(sha(2), spec=ON_OPEN)
    world.gitlab.state.open_merge_request(PROJECT_ID, 2, sha=sha(2), source_branch="feature/2")
    world.dynamodb.put_item(
        TableName=TABLE,
        Item={
            "pk": {"S": f"mr#{PROJECT_ID}/2"},
            "project_id": {"N": str(PROJECT_ID)},
            "mr_iid": {"N": "2"},
            "rev": {"N": "1"},
            "status": {"S": "deploying"},
            "commit_sha": {"S": sha(2)},
            "source_project_id": {"N": str(PROJECT_ID)},
            "source_branch": {"S": "feature/2"},
            "trigger": {"S": "merge_request"},
            "ttl_seconds": {"N": "1800"},
            "launched_at": {"N": "1000"},
            "deadline": {"N": "2800"},
            "problems": {"L": []},
        },
    )
    summary = world.reconcile()
    assert summary["stopped"] == 1 and summary["finished"] == 1
    assert world.task(orphan)["lastStatus"] == "STOPPED" and world.task(task["taskArn"])["lastStatus"] != "STOPPED"
    assert "The launch was interrupted" in world.note(2) and world.record(2)["status"] == "failed"
    tally["orphans stopped"] += 1


def test_reconciler_retries_mr_updates_that_failed(world: World, tally):
    task = launch(world, 1)
    world.gitlab.state.fail_next(50, status=500)  # GitLab is down: every retry of the event fails
    for _ in range(3):  # the first delivery and Lambda's two async retries
        with pytest.raises(Exception):
            world.task_event(task["taskArn"], "RUNNING")
    tally["faults injected"] += 50 - len(world.gitlab.state.faults)
    world.gitlab.state.faults.clear()
    assert "deploying" in world.note(1)  # the event went to the dead-letter queue
    world.ecs.stop_task(cluster=CLUSTER, task=task["taskArn"], reason="Essential container in task exited")
    world.reconcile()  # GitLab is back: the MR catches up with the truth
    assert "Review app: stopped" in world.note(1) and open_environments(world) == []


def test_two_reconcilers_at_once_are_harmless(world: World, tally):
    tasks = [launch(world, iid) for iid in range(1, 6)]
    for task in tasks:
        world.ecs.stop_task(cluster=CLUSTER, task=task["taskArn"], reason="Essential container in task exited")
    reconcilers = [load_handler("ReconcileFunction") for _ in range(2)]
    with ThreadPoolExecutor(2) as pool:
        summaries = list(
            pool.map(lambda handler: handler({}, LambdaContext(function_name="ReconcileFunction")), reconcilers)
        )
    assert sum(s["finished"] for s in summaries) == 5, summaries
    assert all(s["failed"] == 0 for s in summaries)
    for iid in range(1, 6):
        assert world.record(iid)["status"] in ("stopped", "failed") and len(world.notes(iid)) == 1
    assert open_environments(world) == [] and derived_definitions(world) == []


# --------------------------------------------------------------------------- nothing left behind


def test_many_lifecycles_leave_no_trace(world: World, tally):
    rng = random.Random("leave-no-trace")
    for iid in range(1, 25):
        task = launch(world, iid)
        if rng.random() < 0.8:
            world.task_event(task["taskArn"], "RUNNING")
        ending = rng.choice(["ttl", "merge", "close", "replace", "crash", "lost"])
        if ending == "replace":
            world.commit(sha(1000 + iid), spec=ON_OPEN)
            world.push(iid, sha(1000 + iid))
            world.task_event(task["taskArn"], "STOPPED", exit_codes={"web": 143}, stop_code="UserInitiated")
            task = next(t for t in world.tasks() if t["group"] == f"review-app:{PROJECT_ID}:{iid}")
            world.task_event(task["taskArn"], "RUNNING")
            ending = "ttl"
        if ending == "ttl":
            world.expire(task["taskArn"])
        elif ending in ("merge", "close"):
            world.send_mr(iid, ending)
            world.task_event(task["taskArn"], "STOPPED", exit_codes={"web": 143}, stop_code="UserInitiated")
        elif ending == "crash":
            world.task_event(task["taskArn"], "STOPPED", exit_codes={"web": 1})
        else:  # "lost": the task stopped but its event never came
            world.ecs.stop_task(cluster=CLUSTER, task=task["taskArn"], reason="Essential container in task exited")
        tally["lifecycles run"] += 1
    summary = world.reconcile()
    tally["orphans after reconcile"] += summary["stopped"]
    assert world.tasks() == []
    assert derived_definitions(world) == []
    assert open_environments(world) == []
    for iid in range(1, 25):
        assert world.record(iid)["status"] in ("stopped", "failed") and world.record(iid)["expires_at"] > 0
        assert len(world.notes(iid)) == 1


# --------------------------------------------------------------------------- faults


def test_gitlab_errors_then_recovery(world: World, tally):
    task = launch(world, 1)
    world.gitlab.state.fail_next(2, status=500, method="PUT")  # absorbed by the client's retries
    world.task_event(task["taskArn"], "RUNNING")
    assert "Review app: live" in world.note(1)
    world.gitlab.state.fail_next(6, status=502)  # more than the retries: the event fails ...
    stop = events.task_state_change(
        world.task(task["taskArn"]), last_status="STOPPED", version=9, exit_codes={"web": 124}
    )
    with pytest.raises(Exception):
        world.deliver_task_event(stop)
    world.gitlab.state.faults.clear()
    world.deliver_task_event(stop)  # ... and Lambda's retry of the same event puts it right
    assert "time to live (30m) ran out" in world.note(1) and open_environments(world) == []
    assert len(world.notes(1)) == 1
    tally["faults injected"] += 8


def test_run_task_throttled_or_without_capacity_then_recovering(fault_world: World, tally):
    world = fault_world
    world.proxy.inject(fault_proxy.throttled("RunTask", 1))
    world.proxy.inject(fault_proxy.no_capacity(1))
    launch(world, 1)  # botocore retries the throttle; we retry the missing capacity
    assert "deploying" in world.note(1)
    world.proxy.inject(fault_proxy.no_capacity(3))  # the first try and both of its quick retries
    world.commit(sha(2), spec=ON_OPEN)
    answer = world.open_mr(2, sha(2), branch="feature/2")
    assert answer["status"] == 202 and answer["body"]["message"].startswith("postponed:")
    note = world.note(2)
    assert "Review app: queued" in note and "Capacity is unavailable" in note and "tries again in 1 minute" in note
    assert [t for t in world.tasks() if t["group"].endswith(":2")] == []
    assert not [a for a in derived_definitions(world) if "review-app_review-apps-local_14-2:" in a]
    tally["faults injected"] += sum(world.proxy.injected.values())


def test_throttled_dynamodb_and_ecs_describes_are_retried(fault_world: World, tally):
    world = fault_world
    task = launch(world, 1)
    world.proxy.inject(
        fault_proxy.Fault(
            "DynamoDB_20120810.GetItem",
            1,
            400,
            {
                "__type": "com.amazonaws.dynamodb.v20120810#ThrottlingException",
                "message": "Rate of requests exceeds the allowed throughput.",
            },
        )
    )
    world.task_event(task["taskArn"], "RUNNING")
    assert "Review app: live" in world.note(1)
    tally["faults injected"] += sum(world.proxy.injected.values())

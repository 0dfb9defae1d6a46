"""No fault leaves a task running without a deadline, drops the queue, or loses a delivery.

The real handlers against moto behind a fault proxy (a call fails, or is carried out and then
its answer is lost) and the GitLab stand-in (failing or hanging). Every scenario ends with each
running task having a deadline or being stopped, the queue intact, and the MR on its newest commit.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import time_machine

from local import fault_proxy
from local.world import PROJECT_ID, SCHEDULE_GROUP, TABLE, World

ON_OPEN = "task_definition: shop-web\ntrigger: merge_request\nttl: 30m\n"
CREATE_SCHEDULE = "POST /schedules/"  # Scheduler speaks REST: matched by method and path
STOP_TASK = "StopTask"
PUT_ITEM = "DynamoDB_20120810.PutItem"
TRANSACT = "DynamoDB_20120810.TransactWriteItems"


def sha(n: int) -> str:
    return f"{n:040x}"


def later(seconds: int) -> time_machine.travel:
    """The functions' clock `seconds` on (moto and the stand-in don't mind)."""
    return time_machine.travel(time.time() + seconds, tick=True)


def open_mr(world: World, iid: int, commit: int | None = None) -> dict:
    world.commit(sha(commit or iid), spec=ON_OPEN)
    return world.open_mr(iid, sha(commit or iid), branch=f"feature/{iid}")


def task_of(world: World, iid: int) -> dict | None:
    return next((t for t in world.tasks() if t["group"] == f"review-app:{PROJECT_ID}:{iid}"), None)


def every_task_has_a_way_to_end(world: World) -> None:
    schedules = world.schedules()
    for task in world.tasks():
        iid = int(task["group"].rsplit(":", 1)[1])
        assert f"mr-{PROJECT_ID}-{iid}" in schedules, f"task of !{iid} runs with no deadline schedule"


# --------------------------------------------------------------------------- every running task has a way to end


def test_a_launch_whose_schedule_fails_says_so_and_the_reconciler_makes_it(fault_world: World, tally):
    world = fault_world
    world.proxy.inject(fault_proxy.server_error(CREATE_SCHEDULE, 3))  # the webhook's three attempts
    assert open_mr(world, 1)["status"] == 202
    assert task_of(world, 1) is not None and "mr-14-1" not in world.schedules()
    assert world.record(1)["deadline_unscheduled"] is True
    assert "could not be made yet" in world.note(1)

    summary = world.reconcile()
    assert summary["rescheduled"] == 1 and summary["failed"] == 0
    every_task_has_a_way_to_end(world)
    assert world.record(1)["deadline_unscheduled"] is False and "could not be made" not in world.note(1)
    assert world.reconcile()["rescheduled"] == 0
    tally["faults injected"] += sum(world.proxy.injected.values())


def test_a_lost_schedule_is_made_again(world: World):
    open_mr(world, 1)
    world.task_event(task_of(world, 1)["taskArn"], "RUNNING")
    world.scheduler.delete_schedule(Name="mr-14-1", GroupName=SCHEDULE_GROUP)
    assert world.reconcile()["rescheduled"] == 1
    every_task_has_a_way_to_end(world)


def test_at_the_deadline_a_throttled_stop_is_asked_again(fault_world: World, tally):
    world = fault_world
    open_mr(world, 1)
    task = task_of(world, 1)["taskArn"]
    world.task_event(task, "RUNNING")
    world.time_passes(1)
    world.proxy.inject(fault_proxy.throttled(STOP_TASK, 5))  # botocore's five attempts, all throttled
    summary = world.reconcile()  # does not raise: the run goes on
    assert summary["failed"] == 1 and world.record(1)["status"] == "stopping"
    assert world.task(task)["desiredStatus"] == "RUNNING" and "mr-14-1" in world.schedules()
    assert world.reconcile()["stopped_again"] == 0  # asked under two minutes ago
    with later(150):
        assert world.reconcile()["stopped_again"] == 1
    assert world.task(task)["desiredStatus"] == "STOPPED"
    tally["faults injected"] += sum(world.proxy.injected.values())


def test_a_merge_whose_stop_is_throttled_keeps_the_deadline_and_is_stopped_later(fault_world: World):
    world = fault_world
    open_mr(world, 1)
    task = task_of(world, 1)["taskArn"]
    world.task_event(task, "RUNNING")
    world.proxy.inject(fault_proxy.throttled(STOP_TASK, 3))  # the webhook's three attempts
    answer = world.send_mr(1, "merge")
    assert answer["status"] == 202 and world.record(1)["status"] == "stopping"
    assert world.task(task)["desiredStatus"] == "RUNNING"
    assert "mr-14-1" in world.schedules()  # the deadline still holds meanwhile
    with later(150):
        assert world.reconcile()["stopped_again"] == 1
    assert world.task(task)["desiredStatus"] == "STOPPED"


def test_a_lost_running_event_is_healed_from_the_task(alb_world: World):
    world = alb_world
    open_mr(world, 1)
    assert world.reconcile()["went_live"] == 0  # the event may still come
    with later(130):
        summary = world.reconcile()
    assert summary["went_live"] == 1
    record = world.record(1)
    assert record["status"] == "live" and record["routed_target"]
    assert world.targets(record["target_group_arn"]) == [record["routed_target"]]
    assert "Review app: live" in world.note(1)
    every_task_has_a_way_to_end(world)


# --------------------------------------------------------------------------- the queue keeps its order


def test_no_capacity_during_a_run_keeps_the_queue_in_its_order(make_fault_world, tally):
    world = make_fault_world(MAX_RUNNING_APPS="3")
    for iid in range(1, 16):
        open_mr(world, iid)
    queued = sorted((r for r in world.all_records() if r["status"] == "queued"), key=lambda r: r["queued_at"])
    order = [r["mr_iid"] for r in queued]
    assert len(order) == 12
    for iid in (1, 2, 3):
        world.task_event(task_of(world, iid)["taskArn"], "STOPPED", exit_codes={"web": 1})

    world.proxy.inject(fault_proxy.no_capacity(1000))
    summary = world.reconcile()
    assert summary["started_from_queue"] == 0
    assert world.proxy.injected["RunTask"] == 3  # one MR's try and its quick retries: the pass ended there
    still = sorted((r for r in world.all_records() if r["status"] == "queued"), key=lambda r: r["queued_at"])
    assert [r["mr_iid"] for r in still] == order  # nobody lost, nobody moved
    head = world.record(order[0])
    assert head["retry_at"] > time.time() and "Capacity is unavailable" in world.note(order[0])
    assert "**number 1** in the queue" in world.note(order[0])

    world.proxy.faults.clear()  # capacity is back
    assert world.reconcile()["started_from_queue"] == 0  # the head waits out its backoff; nobody overtakes it
    with later(70):
        assert world.reconcile()["started_from_queue"] == 3
    started = {int(t["group"].rsplit(":", 1)[1]) for t in world.tasks()}
    assert started == set(order[:3])
    every_task_has_a_way_to_end(world)
    tally["faults injected"] += sum(world.proxy.injected.values())


def _seed_queue(world: World, like: int, iids: range) -> None:
    """Queued MRs behind `like`, as copies of its record (the reconciler never gets to them)."""
    item = world.dynamodb.get_item(TableName=TABLE, Key={"pk": {"S": f"mr#{PROJECT_ID}/{like}"}})["Item"]
    for offset, iid in enumerate(iids, start=1):
        copy = dict(item)
        copy.update(
            pk={"S": f"mr#{PROJECT_ID}/{iid}"},
            mr_iid={"N": str(iid)},
            queued_at={"N": str(int(item["queued_at"]["N"]) + offset)},
            note_id={"N": "0"},
        )
        world.dynamodb.put_item(TableName=TABLE, Item=copy)


def test_with_gitlab_hanging_the_reconciler_keeps_its_minute(make_world, tally):
    world = make_world(MAX_RUNNING_APPS="1")
    open_mr(world, 1)
    task = task_of(world, 1)["taskArn"]
    world.task_event(task, "RUNNING")
    open_mr(world, 2)
    _seed_queue(world, 2, range(3, 102))
    world.time_passes(1)
    world.gitlab.state.slow_next(1000, seconds=30)  # GitLab accepts connections and never answers
    try:
        started = time.monotonic()
        summary = world.reconcile()
        took = time.monotonic() - started
    finally:
        world.gitlab.state.delays.clear()
    assert took < 120 * 0.25, took  # ReconcileFunction's Timeout is 120 s
    assert summary["stopped"] == 1 and world.task(task)["desiredStatus"] == "STOPPED"  # the AWS step was done
    assert summary["gitlab_unwell"] and summary["started_from_queue"] == 0
    assert len([r for r in world.all_records() if r["status"] == "queued"]) == 100
    tally["reconciler seconds with GitLab hanging"] += round(took)


def test_with_gitlab_failing_the_reconciler_stops_asking_it(make_world):
    world = make_world(MAX_RUNNING_APPS="1")
    open_mr(world, 1)
    open_mr(world, 2)
    _seed_queue(world, 2, range(3, 92))
    world.task_event(task_of(world, 1)["taskArn"], "STOPPED", exit_codes={"web": 1})
    world.gitlab.state.fail_next(1000, status=503)
    try:
        summary = world.reconcile()
        asked = 1000 - len(world.gitlab.state.faults)
    finally:
        world.gitlab.state.faults.clear()
    assert summary["gitlab_unwell"] == "HTTP 503"
    assert asked <= 4, asked  # one call and its retries, not 4 per queued MR
    assert len([r for r in world.all_records() if r["status"] == "queued"]) == 90
    assert world.reconcile()["started_from_queue"] == 1  # GitLab is back: the head starts


# --------------------------------------------------------------------------- deliveries are kept


def test_deliveries_in_a_gitlab_outage_are_kept_and_carried_out_after(world: World, tally):
    open_mr(world, 1)
    world.task_event(task_of(world, 1)["taskArn"], "RUNNING")
    world.gitlab.state.fail_next(1000, status=503)
    try:
        world.commit(sha(11), spec=ON_OPEN)
        pushed = world.push(1, sha(11))
        world.commit(sha(2), spec=ON_OPEN)
        opened = world.open_mr(2, sha(2), branch="feature/2")
    finally:
        world.gitlab.state.faults.clear()
    for answer in (pushed, opened):
        assert answer["status"] == 202 and answer["body"]["message"].startswith("kept: GitLab failed"), answer
    assert world.record(1)["commit_sha"] == sha(1) and world.record(2)["pending_ask"]

    summary = world.reconcile()
    assert summary["kept_carried_out"] == 2
    assert world.record(1)["commit_sha"] == sha(11) and world.record(1)["status"] == "deploying"
    assert world.record(2)["status"] == "deploying" and task_of(world, 2) is not None
    assert not world.record(1).get("pending_ask") and not world.record(2).get("pending_ask")
    assert world.reconcile()["kept_carried_out"] == 0
    assert len(world.tasks()) == 2
    every_task_has_a_way_to_end(world)
    tally["deliveries kept"] += 2


def test_an_older_kept_push_does_not_undo_a_newer_commit(world: World):
    open_mr(world, 1)
    world.gitlab.state.fail_next(1000, status=503)
    try:
        world.commit(sha(11), spec=ON_OPEN)
        assert world.push(1, sha(11))["status"] == 202
    finally:
        world.gitlab.state.faults.clear()
    world.commit(sha(12), spec=ON_OPEN)
    assert world.push(1, sha(12))["status"] == 202  # served at once
    world.reconcile()
    assert world.record(1)["commit_sha"] == sha(12) and not world.record(1).get("pending_ask")
    assert len(world.tasks()) == 1


# --------------------------------------------------------------------------- a write that succeeded is a success


def test_a_write_whose_answer_was_lost_is_a_write_that_succeeded(make_fault_world, tally):
    world = make_fault_world(MAX_RUNNING_APPS="5")
    # The delivery memory's claim is the first PutItem of a delivery.
    world.proxy.inject(fault_proxy.server_error(PUT_ITEM, 1, applied=True))
    first = open_mr(world, 1)
    assert first["status"] == 202 and first["body"]["message"] == "deploying", first
    # The launch's claim, a transaction under caps.
    world.proxy.inject(fault_proxy.server_error(TRANSACT, 1, applied=True))
    second = open_mr(world, 2)
    assert second["status"] == 202 and second["body"]["message"] == "deploying", second
    # The launched record's write, the second PutItem.
    world.proxy.inject(fault_proxy.server_error(PUT_ITEM, 1, applied=True, skip=1))
    third = open_mr(world, 3)
    assert third["status"] == 202 and third["body"]["message"] == "deploying", third
    assert sum(world.proxy.injected.values()) == 3
    for iid in (1, 2, 3):
        assert world.record(iid)["status"] == "deploying" and world.record(iid)["task_arn"]
        assert task_of(world, iid)["taskArn"] == world.record(iid)["task_arn"]
    assert world.running_slots() == {f"{PROJECT_ID}/{i}" for i in (1, 2, 3)}
    every_task_has_a_way_to_end(world)
    tally["faults injected"] += 3


# --------------------------------------------------------------------------- one note, at once


def test_one_writer_creates_the_note(world: World):
    world.gitlab.state.fail_next(1, status=500, method="POST", path_contains="/notes")
    open_mr(world, 1)
    assert world.notes(1) == [] and world.record(1)["note_id"] == 0
    task = task_of(world, 1)["taskArn"]
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda act: act(), [lambda: world.task_event(task, "RUNNING"), world.reconcile]))
    world.reconcile()
    assert len(world.notes(1)) == 1 and "Review app: live" in world.note(1)


def test_the_note_a_writer_made_is_recorded_even_when_the_record_moved_on(world: World):
    """While the note is being created another writer moves the record on without changing what
    the MR shows: the writer that made the note records its id all the same (it used to leave the
    MR to a reconciler run a minute later, which then found the claim still fresh)."""
    world.commit(sha(1), spec=ON_OPEN)

    def another_writer() -> None:
        world.dynamodb.update_item(
            TableName=TABLE,
            Key={"pk": {"S": f"mr#{PROJECT_ID}/1"}},
            UpdateExpression="SET rev = rev + :one",
            ExpressionAttributeValues={":one": {"N": "1"}},
        )

    world.gitlab.state.while_serving("POST", "/notes", another_writer)
    assert world.open_mr(1, sha(1))["status"] == 202
    [note] = world.notes(1)
    assert world.record(1)["note_id"] == note["id"]
    assert world.gitlab.state.meanwhile == []  # the other writer did act


def test_a_push_to_a_queued_mr_is_on_the_mr_at_once(make_world):
    world = make_world(MAX_RUNNING_APPS="1")
    open_mr(world, 1)
    open_mr(world, 2)
    assert "Review app: queued" in world.note(2)
    world.commit(sha(22), spec=ON_OPEN)
    world.push(2, sha(22))
    assert f"`{sha(22)[:8]}`" in world.note(2) and "**number 1** in the queue" in world.note(2)
    assert world.commit_statuses(sha(22))[-1]["status"] == "pending"


def test_a_kept_ask_that_needs_nothing_leaves_nothing(world: World):
    """A pipeline for an MR without a spec, during an outage: kept, carried out (nothing to do),
    and then no bare record is left, and no note is made."""
    world.commit(sha(5), spec=None)
    world.gitlab.state.open_merge_request(PROJECT_ID, 5, sha=sha(5), source_branch="feature/5")
    world.gitlab.state.fail_next(1000, status=503)
    try:
        assert world.pipeline(5, sha=sha(5))["status"] == 202
    finally:
        world.gitlab.state.faults.clear()
    assert world.record(5)["pending_ask"]
    assert world.reconcile()["kept_carried_out"] == 1
    assert world.record(5) is None and world.notes(5) == []
    world.reconcile()
    assert world.notes(5) == []


def test_a_write_beside_a_launch_in_flight_does_not_supersede_it(fault_world: World):
    """Keeping a delivery or claiming the note's creation moves the record's rev while a launch
    waits on RunTask: the launch looks again, finds its claim still standing, and keeps its task."""
    world = fault_world
    world.commit(sha(1), spec=ON_OPEN)
    world.gitlab.state.open_merge_request(PROJECT_ID, 1, sha=sha(1), source_branch="feature/1")

    def another_writer() -> None:
        world.dynamodb.update_item(
            TableName=TABLE,
            Key={"pk": {"S": f"mr#{PROJECT_ID}/1"}},
            UpdateExpression="SET note_claimed_at = :now, rev = rev + :one",
            ExpressionAttributeValues={":now": {"N": str(int(time.time()))}, ":one": {"N": "1"}},
        )

    world.proxy.inject(fault_proxy.meanwhile(f"{fault_proxy.ECS}.RunTask", another_writer))
    answer = world.send_mr(1, "open")
    assert answer["status"] == 202 and answer["body"]["message"] == "deploying", answer
    [task] = world.tasks()
    assert world.record(1)["task_arn"] == task["taskArn"]
    every_task_has_a_way_to_end(world)

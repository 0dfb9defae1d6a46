"""Sleep when nobody looks, wake on the first visit: the real reconciler, wake and task-event
handlers against moto (ELBv2, CloudWatch metrics standing in for the ALB's) and the GitLab
stand-in. The clock is moved by moving the record's timeline back, as the functions read the
real one; RequestCount points are put where the ALB would."""

from __future__ import annotations

import re
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from local.aws_calls import AwsCallCounter
from local.world import PROJECT_ID, REVIEW_DOMAIN, World

SHA1 = "1" * 40
SHA2 = "2" * 40
SPEC = "task_definition: shop-web\ntrigger: merge_request\nttl: 45m\nsleep_after: 15m\n"
HOST = f"awesome-project-mr1-p{PROJECT_ID}.{REVIEW_DOMAIN}"


def live_app(world: World, iid: int = 1, sha: str = SHA1, spec: str = SPEC) -> str:
    world.commit(sha, spec=spec)
    assert world.open_mr(iid, sha)["status"] == 202
    task = world.record(iid)["task_arn"]
    world.task_event(task, "RUNNING")
    return task


def awake_for(world: World, iid: int, minutes: int) -> None:
    world.live_for(iid, minutes)


def visited(world: World, iid: int, minutes_ago: int, count: int = 3) -> None:
    group = world.record(iid)["target_group_arn"]
    world.requests_served(group, count, datetime.now(UTC) - timedelta(minutes=minutes_ago))


def forwards_to(world: World, host: str = HOST) -> str:
    """Where the listener sends `host`: its own rule's target group, else (through the stack's
    catch-all rule) the wake function's."""
    route = world.route(host)
    return route["target_group"] if route else world.wake_target_group


def fall_asleep(world: World, iid: int = 1) -> str:
    task = world.record(iid)["task_arn"]
    awake_for(world, iid, 20)
    summary = world.reconcile()
    assert summary["put_to_sleep"] >= 1
    world.task_event(
        task,
        "STOPPED",
        exit_codes={"web": 143},
        stop_code="UserInitiated",
        stopped_reason="Review app asleep: no visit for 15 minutes",
    )
    return task


def test_an_idle_app_sleeps_frees_its_slot_and_its_address_wakes_it(make_world):
    world = make_world(alb=True, MAX_RUNNING_APPS="5")
    task = live_app(world)
    app_group = forwards_to(world)
    awake_for(world, 1, 20)
    visited(world, 1, minutes_ago=18)  # a visit, but before the last 15 minutes

    summary = world.reconcile()
    assert summary["sleep_candidates"] == 1 and summary["put_to_sleep"] == 1
    assert world.task(task)["desiredStatus"] == "STOPPED"
    assert forwards_to(world) == world.wake_target_group  # visits now wake it
    assert "falling asleep" in world.note(1)
    assert world.schedules() == {}  # its deadline went with it

    world.task_event(
        task,
        "STOPPED",
        exit_codes={"web": 143},
        stop_code="UserInitiated",
        stopped_reason="Review app asleep: no visit for 15 minutes",
    )
    record = world.record(1)
    assert record["status"] == "asleep" and record["stop_reason"] == "asleep" and not record.get("expires_at")
    assert world.running_slots() == set()
    note = world.note(1)
    # Its last visit was 18 minutes ago: the note says so, not its 15-minute sleep_after.
    assert "Review app: asleep" in note and f"**https://{HOST}**" in note and "nobody visited it for 18m" in note
    assert "has been asleep since" in note and "Opening the address wakes it" in note
    assert "slept at" in note and "after 18m idle" in note
    # Awake for the whole span so far: "running the whole time" would say the same figure, so no such line.
    assert "running the whole time would have cost" not in note
    # Its address stays, but it holds nothing on the load balancer: its rule and target group are
    # gone, and the stack's catch-all rule sends its host to the wake function.
    assert world.rules() == [] and world.target_groups() == [] and world.record(1)["target_group_arn"] == ""
    assert forwards_to(world) == world.wake_target_group
    assert world.environment("review/feature-checkout")["state"] == "available"
    assert world.reconcile()["routes_removed"] == 0  # nothing left over to sweep

    # A visit wakes it: one launch of the MR's latest commit, a waking page at once.
    world.commit(SHA2, spec=SPEC)
    world.mr(1)["sha"] = SHA2  # pushed while it slept (the push webhook went elsewhere)
    answer = world.visit(HOST, "/checkout")
    assert answer["statusCode"] == 503 and answer["headers"]["Retry-After"] == "10"
    assert "Waking up the review app for !1" in answer["body"] and 'http-equiv="refresh"' in answer["body"]
    [new_task] = world.tasks()
    assert world.record(1)["commit_sha"] == SHA2 and world.record(1)["status"] == "deploying"
    assert forwards_to(world) == world.wake_target_group  # until it runs, visitors get the page
    assert "woke at" in world.note(1) and "for a visit" in world.note(1)

    assert len(world.target_groups()) == 1 and world.rules() == []  # its target group, no rule yet
    world.task_event(new_task["taskArn"], "RUNNING")
    assert forwards_to(world) not in (app_group, world.wake_target_group) and world.route(HOST)["targets"] != []
    note = world.note(1)
    assert "Review app: live" in note and "It sleeps after 15m without a visit" in note


def test_a_busy_app_is_left_alone(alb_world: World):
    world = alb_world
    task = live_app(world)
    awake_for(world, 1, 40)
    visited(world, 1, minutes_ago=3)
    summary = world.reconcile()
    assert summary["sleep_candidates"] == 1 and summary["put_to_sleep"] == 0
    assert world.task(task)["desiredStatus"] == "RUNNING" and world.record(1)["status"] == "live"
    # Live for less than its sleep_after: not even a candidate.
    world.commit(SHA2, spec=SPEC)
    live_app(world, iid=2, sha=SHA2)
    assert world.reconcile()["sleep_candidates"] == 1


def test_never_sleeps_with_sleep_after_zero(alb_world: World):
    world = alb_world
    live_app(world, spec=SPEC.replace("15m", "0"))
    awake_for(world, 1, 600)
    assert world.reconcile()["sleep_candidates"] == 0
    assert "sleeps after" not in world.note(1)


def test_the_install_default_applies_when_the_spec_is_silent(make_world):
    world = make_world(alb=True, DEFAULT_SLEEP_AFTER="30m")
    live_app(world, spec=SPEC.replace("sleep_after: 15m\n", ""))
    assert world.record(1)["sleep_after"] == 1800 and "It sleeps after 30m without a visit" in world.note(1)


def test_ip_mode_never_sleeps(world: World):
    live_app(world)
    assert world.record(1)["sleep_after"] == 0
    assert "sleep_candidates" not in world.reconcile() and "sleeps after" not in world.note(1)


def test_twenty_visits_at_once_make_one_launch(alb_world: World):
    world = alb_world
    live_app(world)
    fall_asleep(world)
    handlers = [world.load_wake_handler() for _ in range(4)]
    answers, lock = [], threading.Lock()

    def visit(n: int) -> None:
        answer = world.visit(HOST, f"/page/{n}", handler=handlers[n % 4])
        with lock:
            answers.append(answer)

    with ThreadPoolExecutor(max_workers=10) as pool:
        list(pool.map(visit, range(20)))
    assert len(world.tasks()) == 1
    assert [a["statusCode"] for a in answers] == [503] * 20
    # Visits that found it asleep say it wakes; those after the launch was claimed, that it starts.
    woke = sum("Waking up the review app for !1" in a["body"] for a in answers)
    starting = sum("The review app for !1 is starting" in a["body"] for a in answers)
    assert woke >= 1 and woke + starting == 20
    assert world.note(1).count("woke at") == 1


def test_a_visit_while_every_slot_is_taken_shows_its_place(make_world):
    world = make_world(alb=True, MAX_RUNNING_APPS="1")
    live_app(world)
    fall_asleep(world)
    world.commit(SHA2, spec=SPEC)
    world.gitlab.state.open_merge_request(PROJECT_ID, 2, sha=SHA2, source_branch="feature/other")
    world.send_mr(2, "open")  # another MR takes the one slot
    answer = world.visit(HOST)
    assert answer["statusCode"] == 503 and "number 1 in the queue" in answer["body"]
    assert world.record(1)["status"] == "queued" and len(world.tasks()) == 1
    # Waiting after a visit keeps its address (the sweep leaves it), and a later visit says the same.
    assert world.reconcile()["routes_removed"] == 0
    assert "number 1 in the queue" in world.visit(HOST)["body"]


def test_a_visit_takes_its_turn_behind_mrs_already_waiting(make_world):
    world = make_world(alb=True, MAX_RUNNING_APPS="1")
    live_app(world)
    fall_asleep(world)
    world.commit(SHA2, spec=SPEC)
    world.gitlab.state.open_merge_request(PROJECT_ID, 2, sha=SHA2, source_branch="feature/two")
    world.send_mr(2, "open")  # MR 2 runs in the one slot
    world.commit("3" * 40, spec=SPEC)
    world.gitlab.state.open_merge_request(PROJECT_ID, 3, sha="3" * 40, source_branch="feature/three")
    world.send_mr(3, "open")
    assert world.record(3)["status"] == "queued"
    world.redeploy(MAX_RUNNING_APPS="2")  # a slot is free, and MR 3 has not been started yet
    answer = world.visit(HOST)
    # MR 3 asked first: it gets the free slot, and the visit waits behind it rather than jumping in.
    assert world.record(3)["status"] == "deploying"
    assert world.record(1)["status"] == "queued" and world.record(1)["queue_place"] == 1
    assert answer["statusCode"] == 503 and "number 1 in the queue" in answer["body"]
    assert "others were waiting for a slot before this visit" in world.note(1)


def test_a_visit_for_a_removed_spec_ends_the_app_and_the_next_visits_ask_gitlab_nothing(alb_world: World):
    world = alb_world
    live_app(world)
    fall_asleep(world)
    world.commit(SHA2, spec=None)  # the spec was removed
    world.mr(1)["sha"] = SHA2
    assert world.visit(HOST)["statusCode"] == 404 and world.tasks() == []
    record = world.record(1)
    assert record["status"] == "stopped" and record["stop_reason"] == "cannot_wake"
    assert re.search(r"stopped because a visit could not wake it: [a-z][^:]*\.gitlab/review-app\.yml", world.note(1))
    calls = len(world.gitlab.state.requests)
    for _ in range(5):  # a crawler: each answered from the function's memory, then the record
        assert world.visit(HOST)["statusCode"] == 404
    world.cold_start()  # a new WakeFunction container has no memory: the record answers
    assert world.visit(HOST)["statusCode"] == 404
    assert len(world.gitlab.state.requests) == calls and world.tasks() == []


def test_a_visit_for_a_closed_mr_is_404_and_ends_its_app(alb_world: World):
    world = alb_world
    live_app(world)
    fall_asleep(world)
    world.mr(1)["state"] = "closed"  # closed, and its webhook never arrived
    answer = world.visit(HOST)
    assert answer["statusCode"] == 404 and "No review app here" in answer["body"]
    assert world.tasks() == []
    # The MR is over, so the app ends: nothing is left for a visit to find.
    assert world.record(1)["status"] == "stopped" and world.record(1)["stop_reason"] == "closed"
    assert world.route(HOST) is None and world.target_groups() == []


def test_only_the_host_is_trusted(alb_world: World):
    world = alb_world
    live_app(world)
    fall_asleep(world)
    for host in (
        f"other-mr1-p{PROJECT_ID}.{REVIEW_DOMAIN}",  # right ids, not this MR's host
        f"awesome-project-mr1-p{PROJECT_ID}.evil.example",
        f"awesome-project-mr2-p{PROJECT_ID}.{REVIEW_DOMAIN}",
        "",
        "x" * 5000,
    ):
        assert world.visit(host)["statusCode"] == 404, host
    assert world.tasks() == []
    assert world.visit(HOST.upper() + ":443")["statusCode"] == 503  # case and port don't matter


def test_merging_a_sleeping_apps_mr_removes_its_address(alb_world: World):
    world = alb_world
    live_app(world)
    fall_asleep(world)
    answer = world.send_mr(1, "merge")
    assert answer["status"] == 200 and "address is gone" in answer["body"]["message"]
    assert world.rules() == [] and world.target_groups() == []
    record = world.record(1)
    assert record["status"] == "stopped" and record["stop_reason"] == "merged"
    assert "merge request was merged" in world.note(1)


def test_one_metrics_call_per_run_for_many_apps(make_world):
    world = make_world(alb=True, MAX_RUNNING_APPS="10")
    for iid in range(1, 7):
        sha = f"{iid}" * 40
        world.commit(sha, spec=SPEC)
        world.gitlab.state.open_merge_request(PROJECT_ID, iid, sha=sha, source_branch=f"feature/{iid}")
        world.send_mr(iid, "open")
        world.task_event(world.record(iid)["task_arn"], "RUNNING")
        awake_for(world, iid, 30)
    for iid in (2, 4):
        visited(world, iid, minutes_ago=1)
    with AwsCallCounter() as calls:
        summary = world.reconcile()
    assert calls.calls["cloudwatch:GetMetricData"] == 1, calls.calls
    assert summary["sleep_candidates"] == 6 and summary["put_to_sleep"] == 4
    assert {iid for iid in range(1, 7) if world.record(iid)["status"] == "stopping"} == {1, 3, 5, 6}


def test_gitlab_down_during_a_visit_answers_a_retrying_page_and_launches_nothing(alb_world: World):
    world = alb_world
    live_app(world)
    fall_asleep(world)
    world.gitlab.state.fail_next(50, status=503)
    answer = world.visit(HOST)
    assert answer["statusCode"] == 503 and "could not be woken just now" in answer["body"]
    assert 'http-equiv="refresh"' in answer["body"] and world.tasks() == []
    assert world.record(1)["status"] == "asleep"
    world.gitlab.state.faults.clear()  # GitLab is back
    assert "Waking up" in world.visit(HOST)["body"] and len(world.tasks()) == 1


def test_a_failing_load_balancer_call_does_not_keep_the_queue_from_starting(make_world, monkeypatch):
    from moto.elbv2.exceptions import ELBClientError
    from moto.elbv2.models import ELBv2Backend

    world = make_world(alb=True, MAX_RUNNING_APPS="1")
    live_app(world)
    awake_for(world, 1, 20)

    def failing(self, arn):  # type: ignore[no-untyped-def]
        raise ELBClientError("InternalFailure", "The load balancer is having a bad day")

    monkeypatch.setattr(ELBv2Backend, "delete_rule", failing)  # the emulated ELB fails, not our code
    summary = world.reconcile()
    assert summary["put_to_sleep"] == 0 and "started_from_queue" in summary  # the run went on to the queue
    monkeypatch.undo()
    # The app was marked falling asleep before the call failed; the next run's sweep finishes it.
    assert world.reconcile()["routes_removed"] == 1 and world.rules() == []


def test_when_its_time_to_live_runs_out_an_app_that_can_sleep_sleeps(alb_world: World):
    world = alb_world
    task = live_app(world)
    world.expire(task)  # `timeout` ends it with 124 at its TTL
    record = world.record(1)
    assert record["status"] == "asleep" and record["stop_reason"] == "ttl"
    assert forwards_to(world) == world.wake_target_group and world.running_slots() == set()
    assert world.rules() == [] and world.target_groups() == []
    note = world.note(1)
    assert "Review app: asleep" in note and "its time to live (45m) ran out" in note
    assert "when its time to live ran out" in note
    assert world.reconcile()["routes_removed"] == 0
    assert "Waking up" in world.visit(HOST)["body"] and len(world.tasks()) == 1


def test_without_sleep_a_ttl_still_ends_the_app(alb_world: World):
    world = alb_world
    task = live_app(world, spec=SPEC.replace("15m", "0"))
    world.expire(task)
    assert world.record(1)["status"] == "stopped" and "time to live (45m) ran out" in world.note(1)

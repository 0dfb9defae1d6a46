"""A thousand open merge requests on one load balancer: only awake apps hold a rule and a target
group; every other review host reaches the wake function through the stack's catch-all rule.
The real handlers against moto's ELBv2 and the GitLab stand-in; visits go through the local ALB
(local.edge), which matches rules by priority and host as an ALB does."""

from __future__ import annotations

import time

from local.aws_calls import AwsCallCounter
from local.world import PROJECT_ID, REVIEW_DOMAIN, World

SHA = "1" * 40
SPEC = "task_definition: shop-web\ntrigger: merge_request\nttl: 45m\nsleep_after: 15m\n"
OPEN_MRS = 150
AWAKE_MAX = 3
ROUNDS = 2


def host(iid: int) -> str:
    return f"awesome-project-mr{iid}-p{PROJECT_ID}.{REVIEW_DOMAIN}"


def ours_on_the_alb(world: World) -> tuple[int, int]:
    """(target groups, rules) of this install on the load balancer, the stack's own included:
    the wake function's target group and the catch-all rule."""
    return len(world.target_groups()) + 1, len(world.rules()) + 1


def awake(world: World) -> int:
    """Apps that hold a running slot: launching or live (one falling asleep has let its slot go)."""
    return len(world.running_slots())


def check_the_alb_holds_only_awake_apps(world: World, cap: int = AWAKE_MAX) -> None:
    groups, rules = ours_on_the_alb(world)
    up = awake(world)
    assert up <= cap
    assert groups <= up + 1 and rules <= up + 1, (groups, rules, up)


def visit(world: World, iid: int) -> tuple[int, str]:
    """A browser opens the MR's address: the local ALB picks the rule (its own, or the catch-all)."""
    status, _, _, body = world.edge().alb("GET", host(iid), "/", "", {})
    return status, body.decode()


def run_the_launched_apps(world: World, cap: int = AWAKE_MAX) -> None:
    for record in world.all_records():
        if record.get("status") == "deploying" and record.get("task_arn"):
            world.task_event(record["task_arn"], "RUNNING")
            check_the_alb_holds_only_awake_apps(world, cap)


def sleep_the_live_apps(world: World) -> None:
    live = [r for r in world.all_records() if r.get("status") == "live"]
    for record in live:
        world.live_for(int(record["mr_iid"]), 20)  # nobody visited it for 20 minutes
    summary = world.reconcile()  # puts them to sleep, then starts what the queue can
    assert summary["put_to_sleep"] == len(live), summary
    check_the_alb_holds_only_awake_apps(world)
    for record in live:
        world.stopped_as_asked(record["task_arn"])
        check_the_alb_holds_only_awake_apps(world)
    world.reconcile()  # the slots are free: the queue starts the next apps
    check_the_alb_holds_only_awake_apps(world)


def test_150_open_mrs_with_three_awake_hold_at_most_awake_plus_one_on_the_alb(make_world):
    world = make_world(alb=True, MAX_RUNNING_APPS=str(AWAKE_MAX), REVIEW_APP_ACCESS="public")
    world.commit(SHA, spec=SPEC)
    for iid in range(1, OPEN_MRS + 1):
        world.gitlab.state.open_merge_request(PROJECT_ID, iid, sha=SHA, source_branch=f"feature/{iid}")
        assert world.send_mr(iid, "open")["status"] == 202
    assert awake(world) == AWAKE_MAX
    check_the_alb_holds_only_awake_apps(world)

    # A queued MR's host has no rule: the catch-all answers it with its place in the queue.
    status, page = visit(world, OPEN_MRS)
    assert status == 503 and "behind more than 20 others in the queue" in page

    for _ in range(ROUNDS):  # each round: three apps go live, nobody visits, they sleep, three more start
        run_the_launched_apps(world)
        assert awake(world) == AWAKE_MAX and ours_on_the_alb(world) == (AWAKE_MAX + 1, AWAKE_MAX + 1)
        sleep_the_live_apps(world)
    asleep = sorted(int(r["mr_iid"]) for r in world.all_records() if r.get("status") == "asleep")
    assert len(asleep) == ROUNDS * AWAKE_MAX

    # Every asleep MR's host reaches the wake function through the catch-all, and wakes: into the
    # queue here, behind the MRs already waiting, as the install is full.
    for iid in asleep:
        status, page = visit(world, iid)
        assert status == 503 and "in the queue" in page, page
        assert world.record(iid)["status"] == "queued"
        check_the_alb_holds_only_awake_apps(world)

    # Room for one: an asleep MR's visit wakes it, and its app gets its own rule once healthy.
    world.redeploy(MAX_RUNNING_APPS=str(AWAKE_MAX + 1))
    woken = world.all_records()
    first_waiting = min((r for r in woken if r.get("status") == "queued"), key=lambda r: int(r["queued_at"]))
    world.reconcile()  # the queue starts the MR that waited longest
    assert world.record(int(first_waiting["mr_iid"]))["status"] == "deploying"
    run_the_launched_apps(world, cap=AWAKE_MAX + 1)
    iid = int(first_waiting["mr_iid"])
    status, page = visit(world, iid)
    assert status == 200 and "The review app at" in page
    assert world.route(host(iid)) is not None


def test_gitlab_answering_429_to_everything_leaves_the_webhook_and_the_wake_in_time(alb_world: World):
    world = alb_world
    world.commit(SHA, spec=SPEC)
    world.gitlab.state.open_merge_request(PROJECT_ID, 1, sha=SHA, source_branch="feature/1")
    assert world.send_mr(1, "open")["status"] == 202
    world.task_event(world.record(1)["task_arn"], "RUNNING")
    world.live_for(1, 20)
    world.reconcile()
    world.stopped_as_asked(world.record(1)["task_arn"])
    assert world.record(1)["status"] == "asleep"

    world.gitlab.state.fail_next(10_000, status=429)  # rate-limited, whatever the bot asks
    world.gitlab.state.open_merge_request(PROJECT_ID, 2, sha=SHA, source_branch="feature/2")
    started = time.monotonic()
    answer = world.send_mr(2, "open")
    took = time.monotonic() - started
    # Kept for the reconciler rather than failed: GitLab would turn the hook off after 4 failures.
    assert answer["status"] == 202 and answer["body"]["message"].startswith("kept: "), answer
    assert "rate-limiting" in answer["body"]["message"] and took < 2, took
    assert world.record(2) is None or world.record(2)["status"] != "deploying"

    started = time.monotonic()
    page = world.visit(host(1))
    took = time.monotonic() - started
    assert page["statusCode"] == 503 and "could not be woken just now" in page["body"] and took < 2, took
    assert world.record(1)["status"] == "asleep" and len(world.tasks()) == 0

    world.gitlab.state.faults.clear()  # the limit lifts: the resend and the next visit work
    assert world.send_mr(2, "open")["status"] == 202
    assert "Waking up" in world.visit(host(1))["body"]


def test_a_gitlab_slow_on_every_call_never_holds_the_webhook_past_its_timeout(world: World):
    world.commit(SHA, spec=SPEC.replace("sleep_after: 15m\n", ""))
    world.gitlab.state.open_merge_request(PROJECT_ID, 1, sha=SHA, source_branch="feature/1")
    world.gitlab.state.slow_next(50, seconds=2.0)  # every call answers, but only after 2 s
    started = time.monotonic()
    answer = world.send_mr(1, "open")
    took = time.monotonic() - started
    assert took < 8, f"the webhook took {took:.1f}s; its timeout is 8 s"
    assert answer["status"] in (202, 502), answer
    world.gitlab.state.delays.clear()


def test_the_reconciler_calls_aws_in_proportion_to_awake_apps_not_open_mrs(make_world):
    world = make_world(alb=True, MAX_RUNNING_APPS="10")
    world.commit(SHA, spec=SPEC)
    world.gitlab.state.open_merge_request(PROJECT_ID, 1, sha=SHA, source_branch="feature/1")
    world.send_mr(1, "open")
    world.task_event(world.record(1)["task_arn"], "RUNNING")
    world.live_for(1, 20)
    world.reconcile()
    world.stopped_as_asked(world.record(1)["task_arn"])

    def budget_holds(awake_apps: int) -> dict[str, int]:
        world.reconcile()  # anything the last changes moved is settled and told; the next run is steady
        world.cold_start()
        with AwsCallCounter() as counted:
            world.reconcile()
        calls = {k: v for k, v in counted.calls.items() if not k.startswith("dynamodb:")}
        assert sum(calls.values()) <= 3 * awake_apps + 20, calls
        assert calls.get("cloudwatch:GetMetricData", 0) <= 1, calls
        return calls

    few = budget_holds(0)
    world.asleep_like(1, range(2, 201))  # 200 open MRs, all asleep
    assert budget_holds(0) == few  # no call more for 199 more asleep MRs
    for iid in range(201, 211):  # and ten awake ones
        world.gitlab.state.open_merge_request(PROJECT_ID, iid, sha=SHA, source_branch=f"feature/{iid}")
        world.send_mr(iid, "open")
        world.task_event(world.record(iid)["task_arn"], "RUNNING")
        world.live_for(iid, 5)
    assert len(world.rules()) == 10
    busy = budget_holds(10)
    assert busy["elbv2:DescribeTargetHealth"] == 10  # one per awake app
    assert "ecs:ListTaskDefinitions" not in busy  # the families of running apps are not listed

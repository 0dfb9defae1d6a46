"""Address mode: each MR's app at one stable https://<host> on a shared ALB, through the real
handlers against moto's ELBv2 (with the quotas and atomic priorities of a real ALB, see
local.world) and the GitLab stand-in."""

from __future__ import annotations

import re
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from local import world as world_module
from local.events import merge_request_hook
from local.lambda_runtime import LambdaContext, load_handler
from local.world import ACCOUNT, PROJECT_ID, REVIEW_DOMAIN, World

SHA1 = "1" * 40
SHA2 = "2" * 40
ON_OPEN = "task_definition: shop-web\ntrigger: merge_request\nttl: 45m\nhealth_check: /healthz\n"
HOST = f"awesome-project-mr1-p{PROJECT_ID}.{REVIEW_DOMAIN}"
ENV = "review/feature-checkout"


def ip(world: World, task_arn: str) -> str:
    details = {d["name"]: d["value"] for d in world.task(task_arn)["attachments"][0]["details"]}
    return details["privateIPv4Address"]


def open_and_run(world: World, iid: int = 1, sha: str = SHA1) -> str:
    world.commit(sha, spec=ON_OPEN)
    assert world.open_mr(iid, sha)["status"] == 202
    task = world.record(iid)["task_arn"]
    world.task_event(task, "RUNNING")
    return task


def test_open_makes_the_target_group_and_the_rule_waits_for_a_healthy_target(alb_world: World):
    world = alb_world
    world.hold_health_checks()  # as a real ALB: a new target is `initial` until its first checks pass
    world.commit(SHA1, spec=ON_OPEN)
    assert world.open_mr(1, SHA1)["status"] == 202

    # Deploying: the target group exists, the host has no rule of its own yet (the catch-all
    # sends it to the wake function), and the address is known and shown.
    assert world.route(HOST) is None and world.rules() == []
    [group] = world.target_groups()
    assert group["TargetType"] == "ip" and group["Port"] == 8000 and group["HealthCheckPath"] == "/healthz"
    assert group["Matcher"] == {"HttpCode": "200-399"}
    attributes = world.elbv2.describe_target_group_attributes(TargetGroupArn=group["TargetGroupArn"])["Attributes"]
    assert {"Key": "deregistration_delay.timeout_seconds", "Value": "5"} in attributes
    note = world.note(1)
    assert "Review app: deploying" in note and f"**https://{HOST}**" in note and "`/healthz`" in note
    assert world.environment(ENV)["external_url"] == f"https://{HOST}"
    [status] = world.commit_statuses(SHA1)
    assert status["status"] == "running" and status["target_url"] == f"https://{HOST}"
    assert "is starting" in world.visit(HOST)["body"]

    # Running: its private IP is in the target group, still without a rule while the check is new.
    task = world.record(1)["task_arn"]
    now = datetime.now(UTC)
    timeline = {"createdAt": -40, "pullStartedAt": -38, "pullStoppedAt": -20, "startedAt": -6}
    world.task_event(task, "RUNNING", timeline={k: now + timedelta(seconds=v) for k, v in timeline.items()})
    assert world.targets(group["TargetGroupArn"]) == [f"{ip(world, task)}:8000"] and world.route(HOST) is None
    assert "waiting for the load balancer's health check" in world.note(1)
    assert "is starting" in world.visit(HOST)["body"]  # the waking page, never a 502

    # The first check passes: the next visit finds it healthy and gives the host its own rule.
    world.first_checks_pass()
    assert "is up" in world.visit(HOST)["body"]
    route = world.route(HOST)
    assert route["targets"] == [f"{ip(world, task)}:8000"] and route["target_group"] == group["TargetGroupArn"]
    tags = world.elbv2.describe_tags(ResourceArns=[route["target_group"], route["rule"]["RuleArn"]])
    for described in tags["TagDescriptions"]:
        assert {"Key": "review-apps:install", "Value": "review-apps-local"} in described["Tags"]
        assert {"Key": "review-apps:mr", "Value": f"{PROJECT_ID}/1"} in described["Tags"]
    note = world.note(1)
    assert "Review app: live" in note and f"**https://{HOST}**" in note and "10.20." not in note
    assert re.search(
        r"Started in \d+s: 2s waiting for capacity, 18s pulling the image, 14s starting, \d+s until healthy\.", note
    )
    assert "The address answered" in note and "waiting for the load balancer" not in note
    assert world.environment(ENV)["external_url"] == f"https://{HOST}"
    assert world.commit_statuses(SHA1)[-1]["target_url"] == f"https://{HOST}"
    assert world.record(1)["url"] == f"https://{HOST}"


def test_without_a_visit_the_reconciler_gives_a_healthy_app_its_rule(alb_world: World):
    world = alb_world
    world.hold_health_checks()
    task = open_and_run(world)
    assert world.route(HOST) is None and world.reconcile()["found_healthy"] == 0
    world.first_checks_pass()
    assert world.reconcile()["found_healthy"] == 1
    assert world.route(HOST)["targets"] == [f"{ip(world, task)}:8000"]


def test_a_push_swaps_the_ip_and_the_host_waits_for_the_new_app(alb_world: World):
    world = alb_world
    first = open_and_run(world)
    before = world.route(HOST)
    old_ip = ip(world, first)

    world.commit(SHA2, spec=ON_OPEN)
    assert world.push(1, SHA2)["status"] == 202
    # The replaced app leaves the address as soon as it is being stopped: visits get the starting
    # page from the catch-all, not an empty target group's 503.
    assert world.route(HOST) is None and world.targets(before["target_group"]) == []
    assert "is starting" in world.visit(HOST)["body"]
    second = world.record(1)["task_arn"]
    assert second != first
    world.task_event(second, "RUNNING")

    after = world.route(HOST)
    assert after["targets"] == [f"{ip(world, second)}:8000"] and ip(world, second) != old_ip
    assert after["target_group"] == before["target_group"] and len(world.target_groups()) == 1
    assert len(world.rules()) == 1
    assert f"**https://{HOST}**" in world.note(1)


@pytest.mark.parametrize("action", ["merge", "close"])
def test_merge_or_close_deletes_the_rule_and_target_group(alb_world: World, action: str):
    world = alb_world
    task = open_and_run(world)
    assert world.send_mr(1, action)["status"] == 202
    assert world.rules() == [] and world.target_groups() == []
    world.task_event(task, "STOPPED", stop_code="UserInitiated", stopped_reason="Review app stopped")
    record = world.record(1)
    assert record["status"] == "stopped" and record["target_group_arn"] == "" and record["rule_arn"] == ""
    assert world.route(HOST) is None


def test_a_stopped_app_leaves_nothing_on_the_load_balancer_and_the_sweep_removes_leftovers(alb_world: World):
    world = alb_world
    task = open_and_run(world)
    route = world.route(HOST)
    world.expire(task)  # its TTL ran out (sleep is off here): it ends
    assert world.record(1)["status"] == "stopped"
    assert world.rules() == [] and world.target_groups() == []
    # Leftovers (a delete that failed, a hand-made copy): the reconciler removes them.
    vpc = world.elbv2.describe_load_balancers()["LoadBalancers"][0]["VpcId"]
    tags = world.elbv2.describe_tags(ResourceArns=[world.wake_target_group])["TagDescriptions"][0]["Tags"]
    leftover = world.elbv2.create_target_group(
        Name=route["target_group"].split("/")[1],
        Protocol="HTTP",
        Port=8000,
        VpcId=vpc,
        TargetType="ip",
        Tags=[*tags, {"Key": "review-apps:mr", "Value": f"{PROJECT_ID}/1"}],
    )["TargetGroups"][0]["TargetGroupArn"]
    world.elbv2.create_rule(
        ListenerArn=world.listener_arn,
        Priority=10_001,
        Tags=tags,
        Conditions=[{"Field": "host-header", "HostHeaderConfig": {"Values": [HOST]}}],
        Actions=[{"Type": "forward", "TargetGroupArn": leftover}],
    )
    summary = world.reconcile()
    assert summary["routes_removed"] == 1 and world.rules() == [] and world.target_groups() == []
    # The next deploy gets the same address back.
    world.commit(SHA2, spec=ON_OPEN)
    assert world.push(1, SHA2)["status"] == 202
    world.task_event(world.record(1)["task_arn"], "RUNNING")
    assert world.route(HOST)["targets"] == [f"{ip(world, world.record(1)['task_arn'])}:8000"]


def test_two_projects_with_the_same_branch_get_two_hosts(alb_world: World):
    world = alb_world
    other_id, other_path = 77, "payments/awesome_project"
    world.gitlab.state.add_project(other_id, other_path)
    world.ecr.tag_resource(
        resourceArn=f"arn:aws:ecr:us-east-1:{ACCOUNT}:repository/shop",  # a shared repository
        tags=[{"Key": "review-apps:projects", "Value": "awesome_space/ payments/"}],
    )
    open_and_run(world)
    world.register_base_task_definition(family="pay-web", projects="payments/")
    world.gitlab.state.add_commit(other_id, SHA2, {".gitlab/review-app.yml": ON_OPEN.replace("shop-web", "pay-web")})
    world.gitlab.state.open_merge_request(other_id, 1, sha=SHA2, source_branch="feature/checkout")
    body = merge_request_hook(
        "open", project_id=other_id, iid=1, sha=SHA2, source_branch="feature/checkout", project_path=other_path
    )
    assert world.deliver(body, "Merge Request Hook")["status"] == 202
    world.task_event(world.record(1, project_id=other_id)["task_arn"], "RUNNING")
    hosts = sorted(v for r in world.rules() for c in r["Conditions"] for v in c["HostHeaderConfig"]["Values"])
    assert hosts == [f"awesome-project-mr1-p{PROJECT_ID}.{REVIEW_DOMAIN}", f"awesome-project-mr1-p77.{REVIEW_DOMAIN}"]
    assert len(world.target_groups()) == 2


def test_ninety_nine_apps_going_live_at_once_get_distinct_priorities(make_world):
    world = make_world(alb=True, MAX_RUNNING_APPS="99")
    world.commit(SHA1, spec=ON_OPEN)
    for iid in range(1, 100):
        world.gitlab.state.open_merge_request(PROJECT_ID, iid, sha=SHA1, source_branch=f"feature/{iid}")
        assert world.send_mr(iid, "open")["status"] == 202
    containers = [load_handler("TaskEventsFunction") for _ in range(4)]  # four warm function instances
    events = [world.task_state_event(world.record(iid)["task_arn"], "RUNNING") for iid in range(1, 100)]
    lock = threading.Lock()
    failures = []

    def deliver(n: int) -> None:
        try:
            containers[n % 4](events[n], LambdaContext(function_name="TaskEventsFunction"))
        except Exception as exc:
            with lock:
                failures.append(exc)

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(deliver, range(99)))
    assert failures == []
    rules = world.rules()
    priorities = {int(r["Priority"]) for r in rules}
    assert len(rules) == 99 and len(priorities) == 99
    hosts = {v for r in rules for c in r["Conditions"] for v in c["HostHeaderConfig"]["Values"]}
    assert len(hosts) == 99 and len(world.target_groups()) == 99


def test_a_full_listener_leaves_the_app_behind_the_waker_and_is_said_on_the_mr(alb_world: World, monkeypatch):
    world = alb_world
    monkeypatch.setitem(world_module.ALB_QUOTAS, "rules", 3)  # the catch-all and two other teams' rules
    for n in range(2):
        group = world.elbv2.create_target_group(
            Name=f"other-{n}",
            Protocol="HTTP",
            Port=80,
            VpcId=world.elbv2.describe_load_balancers()["LoadBalancers"][0]["VpcId"],
            TargetType="ip",
        )
        world.elbv2.create_rule(
            ListenerArn=world.listener_arn,
            Priority=n + 1,
            Conditions=[{"Field": "host-header", "HostHeaderConfig": {"Values": [f"other-{n}.example.test"]}}],
            Actions=[{"Type": "forward", "TargetGroupArn": group["TargetGroups"][0]["TargetGroupArn"]}],
        )
    task = open_and_run(world)
    assert world.record(1)["status"] == "live" and world.route(HOST) is None
    note = world.note(1)
    assert "load balancer" in note and "listener rules" in note and "waiting page" in note
    assert "MAX_RUNNING_APPS" in note
    # Room again: the reconciler's next run gives the host its rule.
    world.elbv2.delete_rule(RuleArn=world.route("other-0.example.test")["rule"]["RuleArn"])
    world.reconcile()
    assert world.route(HOST)["targets"] == [f"{ip(world, task)}:8000"] and "listener rules" not in world.note(1)


def test_ip_mode_is_unchanged_without_a_listener(world: World):
    world.commit(SHA1, spec=ON_OPEN)
    world.open_mr(1, SHA1)
    task = world.record(1)["task_arn"]
    world.task_event(task, "RUNNING")
    assert world.record(1)["url"] == f"http://{ip(world, task)}:8000" and world.record(1)["host"] == ""


def test_a_priority_another_team_holds_is_skipped(alb_world: World):
    from review_apps.lifecycle import addresses

    world = alb_world
    wanted = list(addresses.priorities("review-apps-local", PROJECT_ID, 1))[:3]
    vpc = world.settings.get("VPC_ID") or world.elbv2.describe_load_balancers()["LoadBalancers"][0]["VpcId"]
    group = world.elbv2.create_target_group(Name="other-team", Protocol="HTTP", Port=80, VpcId=vpc, TargetType="ip")
    for n, priority in enumerate(wanted[:2]):  # the first two priorities our MR would try are taken
        world.elbv2.create_rule(
            ListenerArn=world.listener_arn,
            Priority=priority,
            Conditions=[{"Field": "host-header", "HostHeaderConfig": {"Values": [f"team-{n}.example.test"]}}],
            Actions=[{"Type": "forward", "TargetGroupArn": group["TargetGroups"][0]["TargetGroupArn"]}],
        )
    open_and_run(world)
    assert world.route(HOST)["priority"] == wanted[2]


def test_the_reconciler_makes_a_running_apps_missing_route_again(alb_world: World):
    world = alb_world
    task = open_and_run(world)
    route = world.route(HOST)
    world.elbv2.delete_rule(RuleArn=route["rule"]["RuleArn"])  # someone cleaned the listener by hand
    world.elbv2.delete_target_group(TargetGroupArn=route["target_group"])
    assert world.route(HOST) is None
    record = world.record(1)
    world.dynamodb.update_item(  # launched long enough ago that no launch is routing it right now
        TableName=world_module.TABLE,
        Key={"pk": {"S": f"mr#{PROJECT_ID}/1"}},
        UpdateExpression="SET launched_at = :t",
        ExpressionAttributeValues={":t": {"N": str(record["launched_at"] - 600)}},
    )
    summary = world.reconcile()
    assert summary["routes_repaired"] == 1
    assert world.route(HOST)["targets"] == [f"{ip(world, task)}:8000"]
    assert world.record(1)["rule_arn"] == world.route(HOST)["rule"]["RuleArn"]
    assert world.reconcile()["routes_repaired"] == 0  # and once is enough


def test_the_sweep_touches_only_this_installs_routes(alb_world: World):
    from review_apps.lifecycle import addresses

    world = alb_world
    vpc = world.elbv2.describe_load_balancers()["LoadBalancers"][0]["VpcId"]
    ours = addresses.target_group_name("review-apps-local", PROJECT_ID, 9)  # our name, but made by someone else
    theirs = addresses.target_group_name("review-apps-staging", PROJECT_ID, 9)
    for name, tags in (
        (ours, []),
        (theirs, [{"Key": "review-apps:install", "Value": "review-apps-staging"}]),
        ("shop-prod", []),
    ):
        world.elbv2.create_target_group(
            Name=name, Protocol="HTTP", Port=80, VpcId=vpc, TargetType="ip", **({"Tags": tags} if tags else {})
        )
    task = open_and_run(world)
    world.send_mr(1, "close")
    world.task_event(task, "STOPPED", stop_code="UserInitiated", stopped_reason="Review app stopped")
    summary = world.reconcile()
    assert summary["routes_removed"] == 0
    assert sorted(g["TargetGroupName"] for g in world.target_groups()) == sorted([ours, theirs, "shop-prod"])


def test_a_new_commit_with_a_new_health_check_moves_the_check(alb_world: World):
    world = alb_world
    open_and_run(world)
    world.commit(SHA2, spec=ON_OPEN.replace("/healthz", "/ready"))
    world.push(1, SHA2)
    [group] = world.target_groups()
    assert group["HealthCheckPath"] == "/ready"


def test_a_bad_health_check_is_a_problem_on_the_mr_and_routes_nothing(alb_world: World):
    world = alb_world
    world.commit(SHA1, spec=ON_OPEN.replace("/healthz", "healthz; rm -rf /"))
    world.open_mr(1, SHA1)
    assert "`health_check:`" in world.note(1) and "not deployed" in world.note(1)
    assert world.rules() == [] and world.target_groups() == [] and world.tasks() == []

"""Address mode: each MR's app at one stable https://<host> on a shared ALB, through the real
handlers against moto's ELBv2 (with the quotas and atomic priorities of a real ALB, see
local.world) and the GitLab stand-in."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from local import world as world_module
from local.events import api_event, merge_request_hook
from local.lambda_runtime import LambdaContext, load_handler
from local.world import ACCOUNT, PROJECT_ID, PROJECT_PATH, REVIEW_DOMAIN, WEBHOOK_SECRET, World

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


def test_open_routes_the_host_to_the_app_and_shows_https_from_launch_on(alb_world: World):
    world = alb_world
    world.commit(SHA1, spec=ON_OPEN)
    assert world.open_mr(1, SHA1)["status"] == 202

    # Deploying: the address is known and shown, though nothing answers yet.
    route = world.route(HOST)
    assert route is not None and route["targets"] == []
    [group] = world.elbv2.describe_target_groups(TargetGroupArns=[route["target_group"]])["TargetGroups"]
    assert group["TargetType"] == "ip" and group["Port"] == 8000 and group["HealthCheckPath"] == "/healthz"
    assert group["Matcher"] == {"HttpCode": "200-399"} and group["VpcId"] == world.settings.get(
        "VPC_ID", group["VpcId"]
    )
    attributes = world.elbv2.describe_target_group_attributes(TargetGroupArn=route["target_group"])["Attributes"]
    assert {"Key": "deregistration_delay.timeout_seconds", "Value": "5"} in attributes
    tags = world.elbv2.describe_tags(ResourceArns=[route["target_group"], route["rule"]["RuleArn"]])
    for described in tags["TagDescriptions"]:
        assert {"Key": "review-apps:install", "Value": "review-apps-local"} in described["Tags"]
        assert {"Key": "review-apps:mr", "Value": f"{PROJECT_ID}/1"} in described["Tags"]
    note = world.note(1)
    assert "Review app: deploying" in note and f"**https://{HOST}**" in note and "`/healthz`" in note
    assert world.environment(ENV)["external_url"] == f"https://{HOST}"
    [status] = world.commit_statuses(SHA1)
    assert status["status"] == "running" and status["target_url"] == f"https://{HOST}"

    # Running: its private IP is the one target, and the MR keeps the same address.
    task = world.record(1)["task_arn"]
    world.task_event(task, "RUNNING")
    assert world.route(HOST)["targets"] == [f"{ip(world, task)}:8000"]
    note = world.note(1)
    assert "Review app: live" in note and f"**https://{HOST}**" in note and "10.20." not in note
    assert world.environment(ENV)["external_url"] == f"https://{HOST}"
    assert world.commit_statuses(SHA1)[-1]["target_url"] == f"https://{HOST}"
    assert world.record(1)["url"] == f"https://{HOST}"


def test_a_push_swaps_the_ip_behind_the_same_rule(alb_world: World):
    world = alb_world
    first = open_and_run(world)
    before = world.route(HOST)
    old_ip = ip(world, first)

    world.commit(SHA2, spec=ON_OPEN)
    assert world.push(1, SHA2)["status"] == 202
    # The replaced app leaves the address as soon as it is being stopped.
    assert world.route(HOST)["targets"] == []
    second = world.record(1)["task_arn"]
    assert second != first
    world.task_event(second, "RUNNING")

    after = world.route(HOST)
    assert after["targets"] == [f"{ip(world, second)}:8000"] and ip(world, second) != old_ip
    assert after["rule"]["RuleArn"] == before["rule"]["RuleArn"] and len(world.rules()) == 1
    assert after["target_group"] == before["target_group"] and len(world.target_groups()) == 1
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


def test_a_stopped_app_leaves_its_address_and_the_sweep_removes_the_route(alb_world: World):
    world = alb_world
    task = open_and_run(world)
    world.expire(task)
    route = world.route(HOST)
    assert route is not None and route["targets"] == []  # deregistered at once
    # Within the grace a relaunch may still reuse it; past it the reconciler removes it.
    world.time_passes(1, past_deadline=60)
    world.dynamodb.update_item(
        TableName=world_module.TABLE,
        Key={"pk": {"S": f"mr#{PROJECT_ID}/1"}},
        UpdateExpression="SET stopped_at = :t",
        ExpressionAttributeValues={":t": {"N": "1000"}},
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
    hosts = sorted(v for r in world.rules() for c in r["Conditions"] for v in c["HostHeaderConfig"]["Values"])
    assert hosts == [f"awesome-project-mr1-p{PROJECT_ID}.{REVIEW_DOMAIN}", f"awesome-project-mr1-p77.{REVIEW_DOMAIN}"]
    assert len(world.target_groups()) == 2


def test_a_hundred_mrs_opened_at_once_get_a_hundred_distinct_priorities(make_world):
    world = make_world(alb=True, MAX_RUNNING_APPS="100")
    world.commit(SHA1, spec=ON_OPEN)
    containers = [load_handler("WebhookFunction") for _ in range(4)]  # four warm function instances
    bodies = []
    for iid in range(1, 101):
        world.gitlab.state.open_merge_request(PROJECT_ID, iid, sha=SHA1, source_branch=f"feature/{iid}")
        body = merge_request_hook(
            "open", project_id=PROJECT_ID, iid=iid, sha=SHA1, source_branch=f"feature/{iid}", project_path=PROJECT_PATH
        )
        bodies.append(api_event(body, "Merge Request Hook", WEBHOOK_SECRET, {}))
    lock = threading.Lock()
    statuses = []

    def deliver(n: int) -> None:
        answer = containers[n % 4](bodies[n], LambdaContext(function_name="WebhookFunction"))
        with lock:
            statuses.append(answer["statusCode"])

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(deliver, range(100)))
    assert statuses.count(202) == 100, statuses
    rules = world.rules()
    priorities = {int(r["Priority"]) for r in rules}
    assert len(rules) == 100 and len(priorities) == 100
    hosts = {v for r in rules for c in r["Conditions"] for v in c["HostHeaderConfig"]["Values"]}
    assert len(hosts) == 100 and len(world.target_groups()) == 100


def test_a_full_listener_is_a_clear_answer_on_the_mr_and_starts_nothing(alb_world: World, monkeypatch):
    world = alb_world
    monkeypatch.setitem(world_module.ALB_QUOTAS, "rules", 2)
    for n in range(2):  # two other teams' rules fill the listener
        group = world.elbv2.create_target_group(
            Name=f"other-{n}",
            Protocol="HTTP",
            Port=80,
            VpcId=world.settings.get("VPC_ID") or world.elbv2.describe_load_balancers()["LoadBalancers"][0]["VpcId"],
            TargetType="ip",
        )
        world.elbv2.create_rule(
            ListenerArn=world.listener_arn,
            Priority=n + 1,
            Conditions=[{"Field": "host-header", "HostHeaderConfig": {"Values": [f"other-{n}.example.test"]}}],
            Actions=[{"Type": "forward", "TargetGroupArn": group["TargetGroups"][0]["TargetGroupArn"]}],
        )
    world.commit(SHA1, spec=ON_OPEN)
    answer = world.open_mr(1, SHA1)
    assert answer["status"] == 200 and "could not start" in answer["body"]["message"]
    assert world.tasks() == []
    note = world.note(1)
    assert "could not start" in note and "load balancer" in note and "listener rules" in note
    assert "MAX_RUNNING_APPS" in note
    # Nothing of ours is left on the load balancer, and no running slot is held.
    assert [g["TargetGroupName"] for g in world.target_groups()] == ["other-0", "other-1"]
    assert world.running_slots() == set()


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
    [group] = world.elbv2.describe_target_groups(TargetGroupArns=[world.route(HOST)["target_group"]])["TargetGroups"]
    assert group["HealthCheckPath"] == "/ready" and len(world.target_groups()) == 1


def test_a_bad_health_check_is_a_problem_on_the_mr_and_routes_nothing(alb_world: World):
    world = alb_world
    world.commit(SHA1, spec=ON_OPEN.replace("/healthz", "healthz; rm -rf /"))
    world.open_mr(1, SHA1)
    assert "`health_check:`" in world.note(1) and "not deployed" in world.note(1)
    assert world.rules() == [] and world.target_groups() == [] and world.tasks() == []

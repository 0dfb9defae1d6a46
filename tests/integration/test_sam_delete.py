"""`sam delete` leaves nothing behind: CloudFormation's Delete request (its pre-signed response URL
included) to the real CleanupFunction, against moto holding two installs' tasks, schedules,
routes and task definitions. One install's are all gone; the other's are untouched."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from local.lambda_runtime import LambdaContext
from local.world import CLUSTER, INSTALL_ID, SCHEDULE_GROUP, SCHEDULER_ROLE, World, _load_without
from review_apps.lifecycle import addresses

OTHER = "other-install"


class CloudFormation:
    """The pre-signed S3 URL CloudFormation waits on: records the one PUT it gets."""

    def __init__(self) -> None:
        self.answers: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_PUT(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.answers.append({"content_type": self.headers.get("Content-Type"), **json.loads(body)})
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/stack-response?X-Amz-Signature=abc"

    def request(self, kind: str = "Delete") -> dict:
        return {
            "RequestType": kind,
            "ResponseURL": self.url,
            "StackId": "arn:aws:cloudformation:us-east-1:111122223333:stack/review-apps-local/1",
            "RequestId": "req-1",
            "LogicalResourceId": "Cleanup",
            "PhysicalResourceId": "Cleanup",
            "ResourceType": "Custom::ReviewAppsCleanup",
            "ResourceProperties": {"Install": INSTALL_ID},
        }


class Context(LambdaContext):
    def __init__(self, remaining_ms: int) -> None:
        super().__init__(function_name="CleanupFunction")
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


@pytest.fixture
def cloudformation():
    endpoint = CloudFormation()
    yield endpoint
    endpoint.server.shutdown()


def live(world: World, iid: int) -> str:
    sha = f"{iid:040x}"
    world.commit(sha, spec="task_definition: shop-web\ntrigger: merge_request\nsleep_after: 15m\n")
    world.open_mr(iid, sha, branch=f"feature/{iid}")
    task = world.record(iid)["task_arn"]
    world.task_event(task, "RUNNING")
    return task


def other_installs_things(world: World) -> dict[str, str]:
    """Another install in the same account, cluster and listener."""
    tags = [{"key": "review-apps:install", "value": OTHER}]
    definition = world.register_base_task_definition(family=f"review-app_{OTHER}_14-9", projects=None, tags=tags)
    task = world.ecs.run_task(
        cluster=CLUSTER,
        taskDefinition=definition,
        launchType="FARGATE",
        group="review-app:14:9",
        tags=tags,
        networkConfiguration={
            "awsvpcConfiguration": {"subnets": [world.subnet], "securityGroups": [world.security_group]}
        },
    )["tasks"][0]
    world.scheduler.create_schedule_group(Name=OTHER)
    world.scheduler.create_schedule(
        Name="mr-14-9",
        GroupName=OTHER,
        ScheduleExpression="at(2030-01-01T00:00:00)",
        FlexibleTimeWindow={"Mode": "OFF"},
        Target={"Arn": "arn:aws:scheduler:::aws-sdk:ecs:stopTask", "RoleArn": SCHEDULER_ROLE},
    )
    elb_tags = [{"Key": "review-apps:install", "Value": OTHER}]
    group = world.elbv2.create_target_group(
        Name=addresses.target_group_name(OTHER, 14, 9),
        Protocol="HTTP",
        Port=80,
        TargetType="ip",
        Tags=elb_tags,
        VpcId=world.elbv2.describe_load_balancers()["LoadBalancers"][0]["VpcId"],
    )
    group_arn = group["TargetGroups"][0]["TargetGroupArn"]
    rule = world.elbv2.create_rule(
        ListenerArn=world.listener_arn,
        Priority=7,
        Tags=elb_tags,
        Conditions=[{"Field": "host-header", "HostHeaderConfig": {"Values": ["x.other.test"]}}],
        Actions=[{"Type": "forward", "TargetGroupArn": group_arn}],
    )["Rules"][0]["RuleArn"]
    return {"definition": definition, "task": task["taskArn"], "target_group": group_arn, "rule": rule}


def installs(world: World) -> dict[str, dict[str, int]]:
    """What each install has left: running tasks, schedules, target groups, rules, task definitions."""
    tasks = world.tasks()
    counts = {}
    for install, group in ((INSTALL_ID, SCHEDULE_GROUP), (OTHER, OTHER)):
        tagged = [
            t
            for t in tasks
            if {"key": "review-apps:install", "value": install}
            in world.ecs.describe_tasks(cluster=CLUSTER, tasks=[t["taskArn"]], include=["TAGS"])["tasks"][0].get(
                "tags", []
            )
        ]
        definitions = [
            a
            for a in world.ecs.list_task_definitions(status="ACTIVE")["taskDefinitionArns"]
            if f"/review-app_{install}_" in a
        ]
        prefix = addresses.target_group_name(install, 1, 1).rsplit("-", 2)[0] + "-"
        rules = [
            r
            for r in world.rules()
            if {"Key": "review-apps:install", "Value": install}
            in world.elbv2.describe_tags(ResourceArns=[r["RuleArn"]])["TagDescriptions"][0]["Tags"]
        ]
        counts[install] = {
            "tasks": len(tagged),
            "schedules": len(world.scheduler.list_schedules(GroupName=group)["Schedules"]),
            "target groups": len([g for g in world.target_groups() if g["TargetGroupName"].startswith(prefix)]),
            "rules": len(rules),
            "task definitions": len(definitions),
        }
    return counts


def test_delete_removes_this_installs_things_and_nothing_else(make_world, cloudformation):
    world = make_world(alb=True, DEFAULT_SLEEP_AFTER="15m")
    live(world, 1)
    live(world, 2)
    asleep = live(world, 3)
    world.live_for(3, 20)
    world.reconcile()  # MR 3 sleeps: its rule and target group go
    world.task_event(asleep, "STOPPED", exit_codes={"web": 143}, stop_code="UserInitiated")
    theirs = other_installs_things(world)
    before = installs(world)
    # The sleeping app's revision was retired when its task stopped, and its route went as it fell asleep.
    assert before[INSTALL_ID] == {"tasks": 2, "schedules": 2, "target groups": 2, "rules": 2, "task definitions": 2}
    assert before[OTHER] == {"tasks": 1, "schedules": 1, "target groups": 1, "rules": 1, "task definitions": 1}

    cleanup = _load_without("CleanupFunction", "WAKE_TARGET_GROUP_ARN")  # as the template configures it
    cleanup(cloudformation.request("Delete"), Context(remaining_ms=300_000))

    after = installs(world)
    assert after[INSTALL_ID] == {"tasks": 0, "schedules": 0, "target groups": 0, "rules": 0, "task definitions": 0}
    assert after[OTHER] == before[OTHER]
    [answer] = cloudformation.answers
    assert answer["content_type"] == "" and answer["Status"] == "SUCCESS"
    assert (answer["RequestId"], answer["LogicalResourceId"], answer["PhysicalResourceId"]) == (
        "req-1",
        "Cleanup",
        "Cleanup",
    )
    assert answer["Reason"] == ("Removed 2 tasks, 2 schedules, 2 listener rules, 2 target groups, 2 task definitions.")
    assert world.elbv2.describe_target_groups(TargetGroupArns=[theirs["target_group"]])["TargetGroups"]
    assert world.task(theirs["task"])["lastStatus"] == "RUNNING"


def test_out_of_time_it_still_answers_and_refuses_while_a_task_runs(alb_world, cloudformation):
    world = alb_world
    live(world, 1)
    cleanup = _load_without("CleanupFunction", "WAKE_TARGET_GROUP_ARN")
    cleanup(cloudformation.request("Delete"), Context(remaining_ms=5_000))  # less than the time kept back
    [answer] = cloudformation.answers
    assert answer["Status"] == "FAILED" and "Left: tasks: arn:aws:ecs:" in answer["Reason"]
    assert "Tasks still run: stop them, or run sam delete again." in answer["Reason"]
    assert len(world.tasks()) == 1  # nothing half-done that a second delete won't finish
    cleanup(cloudformation.request("Delete"), Context(remaining_ms=300_000))
    assert cloudformation.answers[-1]["Status"] == "SUCCESS" and world.tasks() == []


@pytest.mark.parametrize("kind", ["Create", "Update"])
def test_create_and_update_do_nothing_but_answer(alb_world, cloudformation, kind):
    live(alb_world, 1)
    _load_without("CleanupFunction", "WAKE_TARGET_GROUP_ARN")(cloudformation.request(kind), Context(300_000))
    assert cloudformation.answers[-1]["Status"] == "SUCCESS" and len(alb_world.tasks()) == 1

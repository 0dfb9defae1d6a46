"""Warm latency per event kind through the real handlers, against the bare API calls that step
needs made directly, in the same run against the same moto server and GitLab stand-in; and
the API calls each step of a full lifecycle makes, counted by instrumenting the clients."""

from __future__ import annotations

import statistics
import time
from collections import Counter
from collections.abc import Callable

import gitlab

from local import events
from local.aws_calls import AwsCallCounter
from local.lambda_runtime import LambdaContext
from local.world import (
    CLUSTER,
    GITLAB_TOKEN,
    PROJECT_ID,
    PROJECT_PATH,
    SCHEDULE_GROUP,
    SCHEDULER_ROLE,
    TABLE,
    WEBHOOK_SECRET,
    World,
)

ITERATIONS = 25
ON_OPEN = "task_definition: shop-web\ntrigger: merge_request\n"
ON_PIPELINE = "task_definition: shop-web\ntrigger: pipeline\n"


def _sha(n: int) -> str:
    return f"{n:040x}"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class Bare:
    """The calls a step needs, made directly with boto3 and python-gitlab: the floor."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.ecs, self.ddb = world.ecs, world.dynamodb
        self.gl = gitlab.Gitlab(world.gitlab.url, private_token=GITLAB_TOKEN)
        self.project = self.gl.projects.get(PROJECT_ID, lazy=True)
        self.td_arns: list[str] = []

    def item(self, iid: int) -> dict:
        return {"pk": {"S": f"bare#{iid}"}, "status": {"S": "x"}}

    def read_spec(self, sha: str) -> None:
        self.project.files.raw(file_path=".gitlab/review-app.yml", ref=sha)

    def launch(self, iid: int, sha: str) -> str:
        self.ddb.get_item(TableName=TABLE, Key={"pk": {"S": f"bare#{iid}"}})
        base = self.ecs.describe_task_definition(taskDefinition="shop-web")["taskDefinition"]
        arn = self.ecs.register_task_definition(
            family=f"bare-{iid}",
            networkMode="awsvpc",
            requiresCompatibilities=["FARGATE"],
            cpu="256",
            memory="512",
            containerDefinitions=base["containerDefinitions"],
        )["taskDefinition"]["taskDefinitionArn"]
        task = self.ecs.run_task(
            cluster=CLUSTER,
            taskDefinition=arn,
            launchType="FARGATE",
            group=f"bare:{iid}",
            networkConfiguration={
                "awsvpcConfiguration": {"subnets": [self.world.subnet], "securityGroups": [self.world.security_group]}
            },
        )["tasks"][0]["taskArn"]
        self.ddb.put_item(TableName=TABLE, Item=self.item(iid))
        self.deadline(iid, task, "create")
        return task

    def deadline(self, iid: int, task: str, how: str) -> None:
        """The deadline's one-time schedule: created at launch, moved when live, deleted at the end
        (moved and deleted: the one the handler made for this MR in the step's set-up)."""
        name = f"bare-{iid}" if how == "create" else f"mr-{PROJECT_ID}-{iid}"
        if how == "delete":
            self.world.scheduler.delete_schedule(Name=name, GroupName=SCHEDULE_GROUP)
            return
        request = {
            "Name": name,
            "GroupName": SCHEDULE_GROUP,
            "ScheduleExpression": "at(2030-01-01T00:00:00)",
            "FlexibleTimeWindow": {"Mode": "OFF"},
            "ActionAfterCompletion": "DELETE",
            "Target": {"Arn": "arn:aws:scheduler:::aws-sdk:ecs:stopTask", "RoleArn": SCHEDULER_ROLE, "Input": task},
        }
        getattr(self.world.scheduler, f"{how}_schedule")(**request)

    def existing_note(self, iid: int) -> int:
        return self.world.notes(iid)[0]["id"]

    def edit_note(self, iid: int, body: str) -> None:
        note = self.project.mergerequests.get(iid, lazy=True).notes.get(self.existing_note(iid), lazy=True)
        note.body = body
        note.save()

    def tell(self, iid: int, edit: bool, deployment: str | None, status: str) -> None:
        mr = self.project.mergerequests.get(iid, lazy=True)
        if edit:
            note = mr.notes.get(self.existing_note(iid), lazy=True)
            note.body = "updated"
            note.save()
        else:
            mr.notes.create({"body": "bare"})
        if deployment:
            self.project.deployments.create(
                {"environment": f"bare/{iid}", "sha": _sha(iid), "ref": "b", "tag": False, "status": deployment}
            )
        self.project.commits.get(_sha(iid), lazy=True).statuses.create({"state": status, "name": f"bare-{iid}"})


def _mr(world: World, iid: int, spec: str) -> None:
    world.commit(_sha(iid), spec=spec)
    world.gitlab.state.open_merge_request(PROJECT_ID, iid, sha=_sha(iid), source_branch=f"feature/{iid}")


def _timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def latency(world: World) -> dict[str, dict]:
    """p50/p99 of each step through the handlers, and of its bare calls. Only the handler call
    (or the bare calls) is timed: payloads and ECS events are built beforehand."""
    bare = Bare(world)
    results: dict[str, dict] = {}
    next_iid = iter(range(10_000, 100_000))

    def webhook(body: dict, kind: str) -> dict:
        return events.api_event(body, kind, WEBHOOK_SECRET)

    def mr_hook(iid: int, action: str, sha: str, **kwargs) -> dict:
        return webhook(
            events.merge_request_hook(
                action,
                project_id=PROJECT_ID,
                iid=iid,
                sha=sha,
                source_branch=f"feature/{iid}",
                project_path=PROJECT_PATH,
                **kwargs,
            ),
            "Merge Request Hook",
        )

    def call_webhook(request: dict) -> None:
        # Each invocation gets its own context, as in Lambda: its remaining time counts from the call.
        assert world.webhook_handler(request, LambdaContext(function_name="WebhookFunction"))["statusCode"] < 500

    def running_mr(spec: str = ON_OPEN) -> tuple[int, dict]:
        iid = next(next_iid)
        _mr(world, iid, spec)
        world.send_mr(iid, "open")
        task = next(t for t in world.tasks() if t["group"] == f"review-app:{PROJECT_ID}:{iid}")
        return iid, task

    def step(name: str, setup: Callable[[], tuple], ours: Callable[..., object], floor: Callable[..., object] | None):
        handler_times, bare_times = [], []
        for _ in range(ITERATIONS):
            args = setup()
            handler_times.append(_timed(lambda: ours(*args)))
            if floor:
                args = setup()
                bare_times.append(_timed(lambda: floor(*args)))
        results[name] = {
            "p50": statistics.median(handler_times),
            "p99": percentile(handler_times, 0.99),
            "bare_p50": statistics.median(bare_times) if floor else None,
        }
        for task in world.tasks():  # keep the cluster small: moto's list/describe grow with it
            world.ecs.stop_task(cluster=CLUSTER, task=task["taskArn"], reason="bench")

    def opened(spec: str = ON_OPEN) -> tuple:
        iid = next(next_iid)
        _mr(world, iid, spec)
        return iid, mr_hook(iid, "open", _sha(iid))

    step(
        "MR open",
        opened,
        lambda iid, request: call_webhook(request),
        lambda iid, _: (
            bare.read_spec(_sha(iid)),
            bare.launch(iid, _sha(iid)),
            bare.tell(iid, False, "running", "running"),
        ),
    )

    def pushed() -> tuple:
        iid, task = running_mr()
        new = _sha(iid + 500_000)
        world.commit(new, spec=ON_OPEN)
        world.mr(iid)["sha"] = new
        return iid, task["taskArn"], mr_hook(iid, "update", new, oldrev=_sha(iid))

    def bare_push(iid: int, old_task: str, _: dict) -> None:
        bare.read_spec(_sha(iid))
        bare.launch(iid, _sha(iid))
        world.ecs.stop_task(cluster=CLUSTER, task=old_task, reason="bench")
        bare.tell(iid, True, "running", "running")

    step("MR push", pushed, lambda iid, task, request: call_webhook(request), bare_push)

    def closing() -> tuple:
        iid, task = running_mr()
        world.mr(iid)["state"] = "closed"
        return iid, task["taskArn"], mr_hook(iid, "close", _sha(iid))

    def bare_close(iid: int, task: str, _: dict) -> None:
        world.dynamodb.get_item(TableName=TABLE, Key={"pk": {"S": f"bare#{iid}"}})
        world.dynamodb.put_item(TableName=TABLE, Item=bare.item(iid))
        world.ecs.stop_task(cluster=CLUSTER, task=task, reason="bench")
        bare.deadline(iid, task, "delete")
        bare.edit_note(iid, "closed")

    step("MR close", closing, lambda iid, task, request: call_webhook(request), bare_close)

    def piped() -> tuple:
        iid = next(next_iid)
        _mr(world, iid, ON_PIPELINE)
        body = events.pipeline_hook(
            "success",
            project_id=PROJECT_ID,
            iid=iid,
            sha=_sha(iid),
            source_branch=f"feature/{iid}",
            project_path=PROJECT_PATH,
        )
        return iid, webhook(body, "Pipeline Hook")

    def bare_pipeline(iid: int, _: dict) -> None:
        bare.project.mergerequests.get(iid)
        bare.read_spec(_sha(iid))
        bare.launch(iid, _sha(iid))
        bare.tell(iid, False, "running", "running")

    step("pipeline", piped, lambda iid, request: call_webhook(request), bare_pipeline)

    def commented() -> tuple:
        iid = next(next_iid)
        body = events.note_hook(
            "looks good",
            project_id=PROJECT_ID,
            iid=iid,
            sha=_sha(iid),
            source_branch=f"feature/{iid}",
            project_path=PROJECT_PATH,
        )
        return (webhook(body, "Note Hook"),)

    step("comment", commented, call_webhook, None)

    def deploying() -> tuple:
        iid, task = running_mr()
        return iid, events.task_state_change(world.task(task["taskArn"]), last_status="RUNNING", version=4)

    def bare_running(iid: int, _: dict) -> None:
        world.dynamodb.get_item(TableName=TABLE, Key={"pk": {"S": f"bare#{iid}"}})
        bare.deadline(iid, "task", "update")
        bare.tell(iid, True, None, "success")
        bare.project.environments.create({"name": f"bare-env/{iid}", "external_url": "http://10.0.0.1:8000"})
        deployment = bare.project.deployments.create(
            {"environment": f"bare/{iid}", "sha": _sha(iid), "ref": "b", "tag": False, "status": "running"}
        )
        deployment.status = "success"
        deployment.save()
        world.dynamodb.put_item(TableName=TABLE, Item=bare.item(iid))

    step("ECS RUNNING", deploying, lambda iid, event: world.deliver_task_event(event), bare_running)

    def expiring() -> tuple:
        iid, task = running_mr()
        world.task_event(task["taskArn"], "RUNNING")
        world.ecs.stop_task(cluster=CLUSTER, task=task["taskArn"], reason="Essential container in task exited")
        event = events.task_state_change(
            world.task(task["taskArn"]), last_status="STOPPED", version=9, exit_codes={"web": 124}
        )
        return iid, event

    def bare_stopped(iid: int, _: dict) -> None:
        world.dynamodb.get_item(TableName=TABLE, Key={"pk": {"S": f"bare#{iid}"}})
        world.dynamodb.put_item(TableName=TABLE, Item=bare.item(iid))
        arn = world.ecs.register_task_definition(
            family=f"bare-stop-{iid}", containerDefinitions=[{"name": "w", "image": "x", "memory": 64}]
        )["taskDefinition"]["taskDefinitionArn"]
        world.ecs.deregister_task_definition(taskDefinition=arn)
        bare.deadline(iid, "task", "delete")
        bare.edit_note(iid, "stopped")
        env = bare.project.environments.create({"name": f"bare-stop/{iid}"})
        env.stop()

    step("ECS STOPPED", expiring, lambda iid, event: world.deliver_task_event(event), bare_stopped)
    return results


def calls_per_step(world: World) -> list[tuple[str, Counter, Counter]]:
    """open → pipeline → running → push → pipeline → running → TTL, counting every call."""
    counter = AwsCallCounter()
    world.cold_start()
    counter.start()
    rows = []
    iid, first, second = 1, _sha(1), _sha(2)
    world.commit(first, spec=ON_PIPELINE)
    world.commit(second, spec=ON_PIPELINE)
    world.gitlab.state.open_merge_request(PROJECT_ID, iid, sha=first, source_branch="feature/bench")

    def measure(name: str, action: Callable[[], object]) -> None:
        counter.calls.clear()
        gitlab_before = len(world.gitlab.state.requests)
        action()
        gitlab_calls = Counter(f"{m} {p}" for m, p in world.gitlab.state.requests[gitlab_before:])
        rows.append((name, Counter(counter.calls), gitlab_calls))

    try:
        measure("MR open", lambda: world.send_mr(iid, "open"))
        measure("pipeline success", lambda: world.pipeline(iid))
        task = world.tasks()[0]["taskArn"]
        # The world's own DescribeTasks (to build the event) is not the handler's: count only delivery.
        event = events.task_state_change(world.task(task), last_status="RUNNING", version=4)
        measure("ECS RUNNING", lambda: world.deliver_task_event(event))
        measure("push", lambda: world.push(iid, second))
        measure("pipeline success (new commit)", lambda: world.pipeline(iid))
        task = next(t["taskArn"] for t in world.tasks() if t["taskArn"] != task)
        event = events.task_state_change(world.task(task), last_status="RUNNING", version=4)
        measure("ECS RUNNING (new task)", lambda: world.deliver_task_event(event))
        world.ecs.stop_task(cluster=CLUSTER, task=task, reason="Essential container in task exited")
        event = events.task_state_change(world.task(task), last_status="STOPPED", version=9, exit_codes={"web": 124})
        measure("ECS STOPPED (TTL)", lambda: world.deliver_task_event(event))
    finally:
        counter.stop()
    return rows

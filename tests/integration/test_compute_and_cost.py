"""Cheaper compute from the spec (Spot, ARM, size) and what a review app cost, on the MR."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from local import events
from local.world import World

SHA1 = "5" * 40


def test_spot_on_arm_with_a_chosen_size(world: World):
    world.commit(
        SHA1,
        spec="task_definition: shop-web\ntrigger: merge_request\ncpu: 512\nmemory: 1GB\n"
        "capacity: spot\narchitecture: arm64\n",
    )
    assert world.open_mr(1, SHA1)["status"] == 202
    [task] = world.tasks()
    assert task["capacityProviderName"] == "FARGATE_SPOT"
    definition = world.ecs.describe_task_definition(taskDefinition=task["taskDefinitionArn"])["taskDefinition"]
    assert (definition["cpu"], definition["memory"]) == ("512", "1024")
    assert definition["runtimePlatform"]["cpuArchitecture"] == "ARM64"
    world.task_event(task["taskArn"], "RUNNING")
    # (0.5 vCPU × $0.03238 + 1 GB × $0.00356) × 0.30 = $0.0059/hour
    assert "Costs about $0.0059/hour (0.5 vCPU, 1 GB, arm64, Fargate Spot (AWS may interrupt it))." in world.note(1)
    world.task_event(
        task["taskArn"],
        "STOPPED",
        exit_codes={"web": 143},
        stop_code="SpotInterruption",
        stopped_reason="Your Spot Task was interrupted.",
    )
    assert "AWS reclaimed the Fargate Spot capacity it ran on" in world.note(1)


def test_the_cost_of_a_known_run(world: World):
    world.commit(SHA1, spec="task_definition: shop-web\ntrigger: merge_request\n")
    world.open_mr(1, SHA1)
    [task] = world.tasks()
    started = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
    description = world.task(task["taskArn"])
    world.deliver_task_event(
        events.task_state_change(description, last_status="RUNNING", version=4, started_at=started)
    )
    assert "Costs about $0.0123/hour (0.25 vCPU, 0.5 GB, x86_64, on demand)." in world.note(1)
    world.deliver_task_event(
        events.task_state_change(
            description,
            last_status="STOPPED",
            version=8,
            started_at=started,
            stopped_at=started + timedelta(minutes=30),
            exit_codes={"web": 124},
        )
    )
    assert "It ran for 30m and cost about $0.0062 (0.25 vCPU, 0.5 GB, x86_64, on demand)." in world.note(1)


def test_an_install_price_table_is_used(make_world):
    world = make_world(PRICES='{"x86_64_vcpu_hour": 0.1, "x86_64_gb_hour": 0.01}')
    world.commit(SHA1, spec="task_definition: shop-web\ntrigger: merge_request\n")
    world.open_mr(1, SHA1)
    [task] = world.tasks()
    world.task_event(task["taskArn"], "RUNNING")
    # 0.25 × $0.10 + 0.5 × $0.01 = $0.03/hour
    assert "Costs about $0.0300/hour" in world.note(1)

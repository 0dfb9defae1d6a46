"""Sleep and wake: the wake function's warm latency (a visit that relaunches a sleeping app, and
a visit while it wakes) against the same run's webhook launch and a bare DynamoDB read; and the
reconciler's run time and API calls with 100 live apps in address mode."""

from __future__ import annotations

import statistics
import time
from datetime import UTC, datetime, timedelta

from local.aws_calls import AwsCallCounter
from local.world import PROJECT_ID, REVIEW_DOMAIN, TABLE, World

ITERATIONS = 15
APPS = 100
SPEC = "task_definition: shop-web\ntrigger: merge_request\nsleep_after: 15m\n"


def _sha(n: int) -> str:
    return f"{n:040x}"


def _host(iid: int) -> str:
    return f"awesome-project-mr{iid}-p{PROJECT_ID}.{REVIEW_DOMAIN}"


def _asleep(world: World, iid: int) -> None:
    """Put MR `iid`'s live app to sleep through the real reconciler and its STOPPED event."""
    task = world.record(iid)["task_arn"]
    world.live_for(iid, 20)
    world.reconcile()
    world.task_event(
        task, "STOPPED", exit_codes={"web": 143}, stop_code="UserInitiated", stopped_reason="Review app asleep"
    )


def _timed(call) -> float:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def wake_latency(world: World) -> dict[str, float]:
    """p50 seconds: a visit that relaunches, a visit while waking, the webhook's launch for an
    opened MR, and a bare DynamoDB GetItem, all in this run."""
    relaunch, waking, opened, bare = [], [], [], []
    for n in range(ITERATIONS):
        iid = n + 1
        world.commit(_sha(iid), spec=SPEC)
        world.gitlab.state.open_merge_request(PROJECT_ID, iid, sha=_sha(iid), source_branch=f"feature/{iid}")
        opened.append(_timed(lambda: world.send_mr(iid, "open")))
        world.task_event(world.record(iid)["task_arn"], "RUNNING")
        _asleep(world, iid)
        relaunch.append(_timed(lambda: world.visit(_host(iid))))
        waking.append(_timed(lambda: world.visit(_host(iid))))
        bare.append(
            _timed(lambda: world.dynamodb.get_item(TableName=TABLE, Key={"pk": {"S": f"mr#{PROJECT_ID}/{iid}"}}))
        )
        world.task_event(world.record(iid)["task_arn"], "RUNNING")  # awake again: the next MR starts clean
        world.send_mr(iid, "close")
    return {
        name: statistics.median(values)
        for name, values in (("relaunch", relaunch), ("waking", waking), ("opened", opened), ("bare_read", bare))
    }


def reconciler_with_live_apps(world: World) -> dict:
    """100 live apps awake for 30 minutes, every one visited 2 minutes ago: a steady run (one
    metrics call, nothing idle); then 20 minutes later, with only the odd ones visited again,
    the run that puts the other half to sleep. The AWS calls of each run are counted."""
    import time_machine

    world.commit(_sha(1), spec=SPEC)
    for iid in range(1, APPS + 1):
        world.gitlab.state.open_merge_request(PROJECT_ID, iid, sha=_sha(1), source_branch=f"feature/{iid}")
        world.send_mr(iid, "open")
        world.task_event(world.record(iid)["task_arn"], "RUNNING")
        world.live_for(iid, 30)
    now = datetime.now(UTC)
    groups = {iid: world.record(iid)["target_group_arn"] for iid in range(1, APPS + 1)}
    for iid, group in groups.items():
        world.requests_served(group, 4, now - timedelta(minutes=2))
    world.reconcile()  # the moved timelines change every note once; the runs below start from there
    world.cold_start()
    steady, steady_summary = AwsCallCounter(), {}
    with steady:
        steady_seconds = _timed(lambda: steady_summary.update(world.reconcile()))
    later = now + timedelta(minutes=20)
    for iid, group in groups.items():
        if iid % 2:
            world.requests_served(group, 4, later - timedelta(minutes=2))
    world.cold_start()
    sleeping, summary = AwsCallCounter(), {}
    with time_machine.travel(later, tick=True), sleeping:
        sleep_seconds = _timed(lambda: summary.update(world.reconcile()))
    return {
        "apps": APPS,
        "steady_seconds": steady_seconds,
        "steady_calls": dict(steady.calls),
        "steady_summary": steady_summary,
        "sleep_seconds": sleep_seconds,
        "sleep_calls": dict(sleeping.calls),
        "summary": summary,
    }

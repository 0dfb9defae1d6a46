"""Sleep and wake: the wake function's warm latency (a visit that relaunches a sleeping app, and
a visit while it wakes) against the same run's webhook launch and a bare DynamoDB read; and the
reconciler's run time and API calls at 1,000 open MRs with 99 awake in address mode."""

from __future__ import annotations

import statistics
import time
from datetime import UTC, datetime, timedelta

from local.aws_calls import AwsCallCounter
from local.world import PROJECT_ID, REVIEW_DOMAIN, TABLE, World

ITERATIONS = 15
OPEN_MRS = 1000
AWAKE = 99  # the most an address-mode install runs: the ALB's 100th target group is the waker's
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
    world.stopped_as_asked(task, "Review app asleep")


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


def reconciler_at_a_thousand(world: World) -> dict:
    """1,000 open MRs: 99 apps awake for 30 minutes (the most an address-mode install allows),
    every one visited 2 minutes ago, and 901 asleep. A steady run (one metrics call, nothing
    idle); then 20 minutes later, with only the odd ones visited again, the run that puts the
    other half to sleep. The AWS calls of each run are counted, DynamoDB's apart. Then visits to
    asleep MRs through the local ALB (the stack's catch-all rule to WakeFunction), timed to the
    waking page, and what this install holds on the load balancer at the end."""
    import time_machine

    world.commit(_sha(1), spec=SPEC)
    template = OPEN_MRS  # one MR put to sleep through the handlers: the others asleep are copies of it
    world.gitlab.state.open_merge_request(PROJECT_ID, template, sha=_sha(1), source_branch=f"feature/{template}")
    world.send_mr(template, "open")
    world.task_event(world.record(template)["task_arn"], "RUNNING")
    _asleep(world, template)
    for iid in range(1, AWAKE + 1):
        world.gitlab.state.open_merge_request(PROJECT_ID, iid, sha=_sha(1), source_branch=f"feature/{iid}")
        world.send_mr(iid, "open")
        world.task_event(world.record(iid)["task_arn"], "RUNNING")
        world.live_for(iid, 30)
    # Written after the launches: moto copies the whole table for every transaction (a launch's
    # slot), which at a thousand items outlasts the request path's timeouts; DynamoDB does not.
    world.asleep_like(template, range(AWAKE + 1, OPEN_MRS))
    now = datetime.now(UTC)
    groups = {iid: world.record(iid)["target_group_arn"] for iid in range(1, AWAKE + 1)}
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
    alb_after_sleep = (len(world.target_groups()), len(world.rules()))
    for record in world.all_records():  # ECS stops the tasks of the apps put to sleep
        if record.get("status") == "stopping":
            world.stopped_as_asked(record["task_arn"], "Review app asleep")
    # Visits to asleep MRs: the ALB stand-in matches no rule of theirs, the catch-all forwards to
    # WakeFunction, which launches through the queue (the install is not full after the sleeps).
    edge, visits, pages = world.edge(), [], []
    for iid in range(AWAKE + 1, AWAKE + 1 + ITERATIONS):
        answer: list = []
        visits.append(_timed(lambda: answer.append(edge.alb("GET", _host(iid), "/", "", {}))))
        pages.append(answer[0][3].decode())
    return {
        "open": OPEN_MRS,
        "awake": AWAKE,
        "records": len(world.all_records()),
        "steady_seconds": steady_seconds,
        "steady_calls": dict(steady.calls),
        "steady_summary": steady_summary,
        "sleep_seconds": sleep_seconds,
        "sleep_calls": dict(sleeping.calls),
        "summary": summary,
        "alb_after_sleep": alb_after_sleep,
        "alb_at_end": (len(world.target_groups()), len(world.rules())),
        "wake_visit_p50": statistics.median(visits),
        "wake_pages": sum("Waking up" in p for p in pages),
        "visits": len(visits),
    }

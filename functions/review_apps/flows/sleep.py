"""Sleep and wake, carried out. The reconciler puts apps nobody visits to sleep (one metrics call
for all of them); WakeFunction starts a sleeping app again when its address is visited, through
the same launch path as every other launch (latest commit, spec re-read, caps and queue)."""

from __future__ import annotations

from review_apps import lifecycle
from review_apps.adapters.store import Conflict
from review_apps.flows import routes
from review_apps.flows.deploy import Deployer
from review_apps.flows.outcome import Result
from review_apps.lifecycle import addresses, sleep
from review_apps.model.record import Record
from review_apps.model.values import Cause, Status, StopReason


def put_idle_apps_to_sleep(deployer: Deployer, records: list[Record], now: int) -> dict[str, int]:
    services, logger = deployer.services, deployer.logger
    apps = sleep.candidates(records, now)
    counts = {"sleep_candidates": len(apps), "put_to_sleep": 0}
    if not apps:
        return counts  # no metrics call when no app could sleep
    queries = sleep.metric_queries(apps)
    requests = services.metrics.request_counts(queries, sleep.window_start(apps, now), now)
    idle_for = {query.record.key: sleep.idle_seconds(query, requests, now) for query in queries}
    for record in sleep.idle(queries, requests, now):
        try:
            if _put_to_sleep(deployer, record, now, idle_for[record.key]):
                counts["put_to_sleep"] += 1
        except Exception:  # one app's trouble must not keep the others awake; the next run tries again
            logger.exception("could not put an idle app to sleep", extra={"mr": record.key})
    return counts


def _put_to_sleep(deployer: Deployer, record: Record, now: int, idle: int) -> bool:
    services = deployer.services
    try:
        asleep = services.store.save(sleep.falling_asleep(record, now, idle))
    except Conflict:  # moved on meanwhile (a push, a command): not idle after all
        return False
    # Its rule and target group go before the task stops, so no visit finds a stopping app: the
    # catch-all rule sends visits to the wake function from here on.
    asleep = services.store.save(routes.settle(services.elb, asleep))
    services.ecs.stop(record.task_arn, f"Review app asleep: no visit for {record.sleep_after // 60} minutes")
    deployer.clear_deadline(asleep)
    deployer.publish(asleep)
    deployer.logger.info("put an idle app to sleep", extra={"mr": record.key, "sleep_after": record.sleep_after})
    return True


def wake(deployer: Deployer, host: str) -> sleep.WakeAnswer:
    """What a visit to `host` finds, starting its app if it sleeps. Only the host is trusted."""
    services = deployer.services
    mr = addresses.parse_host(host, services.settings.review_domain)
    record = services.store.get(*mr) if mr else None
    if record is None or record.host != addresses.normalize_host(host):
        return sleep.WakeAnswer("missing")
    if not lifecycle.may_wake(record):
        if record.status == Status.LIVE and not record.healthy_at:
            return _answer_starting(deployer, record)
        return sleep.answer_for(record)
    outcome = deployer.consider(lifecycle.ConsiderDeploy(record.mr, record.commit_sha, Cause.WAKE), None)
    deployer.logger.info("visit to a sleeping app", extra={"mr": record.key, "outcome": outcome.message})
    after = services.store.get(record.project_id, record.mr_iid)
    if outcome.result == Result.IGNORED and lifecycle.may_wake(after):
        # Not woken and nobody else woke it: the MR is over (its merge or close event was lost), or
        # it may not run any more. It ends here, so the next visit is answered from the record
        # alone, without asking GitLab again.
        current = services.gitlab.merge_request(record.project_id, record.mr_iid)
        if current is None or current.state != "opened":
            reason = StopReason.MERGED if current is not None and current.state == "merged" else StopReason.CLOSED
            deployer.stop(lifecycle.StopApp(record.mr, reason))
        else:
            why = outcome.message.removeprefix("ignored: ")  # our own words for why it may not run
            deployer.stop(lifecycle.StopApp(record.mr, StopReason.CANNOT_WAKE, detail=why))
        return sleep.WakeAnswer("missing")
    return sleep.answer_for(after, woken=True)


def _answer_starting(deployer: Deployer, record: Record) -> sleep.WakeAnswer:
    """Up but not yet found healthy: look now rather than wait for the reconciler, so the
    visitor's next reload reaches the app through its own rule."""
    looked = routes.look_at_health(deployer.services.elb, record)
    if looked != record:
        try:
            looked = deployer.services.store.save(looked)
        except Conflict:
            return sleep.answer_for(record)  # moved on meanwhile: its own flow routes it
        deployer.publish(looked)
    return sleep.answer_for(looked)

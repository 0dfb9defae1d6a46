"""Sleep and wake, carried out. The reconciler puts apps nobody visits to sleep (one metrics call
for all of them); WakeFunction starts a sleeping app again when its address is visited, through
the same launch path as every other launch (latest commit, spec re-read, caps and queue)."""

from __future__ import annotations

from review_apps import lifecycle
from review_apps.adapters.store import Conflict
from review_apps.flows.deploy import Deployer
from review_apps.flows.outcome import Result
from review_apps.lifecycle import addresses, sleep
from review_apps.model.record import Record
from review_apps.model.values import Cause, StopReason


def put_idle_apps_to_sleep(deployer: Deployer, records: list[Record], now: int) -> dict[str, int]:
    services, logger = deployer.services, deployer.logger
    apps = sleep.candidates(records, now)
    counts = {"sleep_candidates": len(apps), "put_to_sleep": 0}
    if not apps:
        return counts  # no metrics call when no app could sleep
    queries = sleep.metric_queries(apps)
    requests = services.metrics.request_counts(queries, sleep.window_start(apps, now), now)
    wake_group = services.settings.wake_target_group_arn
    for record in sleep.idle(queries, requests, now):
        try:
            if _put_to_sleep(deployer, record, wake_group, now):
                counts["put_to_sleep"] += 1
        except Exception:  # one app's trouble must not keep the others awake; the next run tries again
            logger.exception("could not put an idle app to sleep", extra={"mr": record.key})
    return counts


def _put_to_sleep(deployer: Deployer, record: Record, wake_group: str, now: int) -> bool:
    services = deployer.services
    # Visits go to the wake function first, so none finds a stopping app; a record that moved
    # on meanwhile (a push, a command) gets its own route back.
    services.elb.forward(record.rule_arn, wake_group)
    try:
        asleep = services.store.save(sleep.falling_asleep(record, now))
    except Conflict:
        services.elb.forward(record.rule_arn, record.target_group_arn)
        return False
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
        return sleep.answer_for(record)
    outcome = deployer.consider(lifecycle.ConsiderDeploy(record.mr, record.commit_sha, Cause.WAKE), None)
    deployer.logger.info("visit to a sleeping app", extra={"mr": record.key, "outcome": outcome.message})
    after = services.store.get(record.project_id, record.mr_iid)
    if outcome.result == Result.IGNORED and lifecycle.may_wake(after):
        # Not woken and nobody else woke it: the MR is over, or has no spec any more. An MR that is
        # over (its merge or close event was lost) ends here, so its address goes too.
        current = services.gitlab.merge_request(record.project_id, record.mr_iid)
        if current is None or current.state != "opened":
            reason = StopReason.MERGED if current is not None and current.state == "merged" else StopReason.CLOSED
            deployer.stop(lifecycle.StopApp(record.mr, reason))
        return sleep.WakeAnswer("missing")
    return sleep.answer_for(after)

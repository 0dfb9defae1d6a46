"""A task changed state: what it means is decided in lifecycle.task_events; this records it,
moves or deletes the deadline's schedule, cleans up, and tells the MR. Failures raise, so
EventBridge's retries and the dead-letter queue keep the event."""

from __future__ import annotations

import dataclasses
import time

from review_apps import lifecycle
from review_apps.adapters.elb import NoRoute, TargetGroupGone
from review_apps.events import TaskEvent
from review_apps.flows import routes
from review_apps.flows.deploy import Deployer
from review_apps.flows.outcome import Outcome, Result
from review_apps.flows.retry import until_written
from review_apps.lifecycle import crash_log, sleep
from review_apps.messages import needs_publish
from review_apps.model.record import Record
from review_apps.model.values import StopReason


def on_task_event(deployer: Deployer, task: TaskEvent, mr: tuple[int, int]) -> Outcome:
    return until_written(lambda: _once(deployer, task, mr), f"the record for {mr}")


def _once(deployer: Deployer, task: TaskEvent, mr: tuple[int, int]) -> Outcome:
    services = deployer.services
    record = services.store.get(*mr)
    tagged = lifecycle.needs_tag_check(task, record) and services.ecs.tagged_for(task.task_arn, mr)
    decision = lifecycle.on_task_event(task, record, tagged)
    if isinstance(decision, lifecycle.Ignore):
        if record is not None:
            _publish(deployer, record)  # heal an MR update that failed on an earlier delivery
        return Outcome.ignored(decision.reason)
    assert record is not None  # on_task_event ignores events for MRs without a record
    now = int(time.time())
    # The load balancer is changed before the record is saved: if that fails, the event is
    # retried and finds the record as it was, so nothing is skipped.
    if isinstance(decision, lifecycle.PhaseChanged):
        updated = lifecycle.starting(record, task, decision.phase)
    elif isinstance(decision, lifecycle.WentLive) and record.host:
        updated = _route_live_app(deployer, record, task, now)
    elif isinstance(decision, lifecycle.WentLive):
        public_ip = None
        if services.settings.assign_public_ip and task.eni_id:
            public_ip = services.ecs.public_ip(task.eni_id)
        url, caveat = lifecycle.app_url(task.private_ip, public_ip, record.port, services.settings.assign_public_ip)
        updated = lifecycle.went_live(record, task, url=url, url_note=caveat, now=now)
    else:
        updated = lifecycle.stopped(record, task, now)
        if updated.stop_reason == StopReason.CRASHED:
            updated = _with_crash_log(deployer, updated)
        if services.settings.wake_target_group_arn:  # its TTL ran out: it sleeps, and a visit wakes it
            updated = sleep.after_ttl(updated)
        updated = routes.settle(services.elb, updated) if record.host else updated
    saved = services.store.save(updated, lifecycle.slot_change(record, updated))
    if isinstance(decision, lifecycle.Stopped):
        deployer.clear_deadline(saved)
        if saved.task_definition_arn:
            services.ecs.retire(saved.task_definition_arn)
    elif saved.deadline != record.deadline:
        deployer.set_deadline(saved)  # the TTL counts from when the app went live
    _publish(deployer, saved)
    deployer.logger.info("merge request updated", extra={"status": saved.status, "reason": saved.stop_reason})
    return Outcome(Result.UPDATED, str(saved.status), {"mr": saved.key})


def _with_crash_log(deployer: Deployer, record: Record) -> Record:
    """The crashed container's last log lines on the record, if it logs to CloudWatch and the MR's
    readers may see them. Best effort: without them the MR still says why the app stopped."""
    services = deployer.services
    located = [s for s in map(crash_log.LogStream.decode, record.log_streams) if s and s.container == record.container]
    if not located:
        return record
    try:
        if record.crash_log_off or not crash_log.may_show(
            services.gitlab.visibility(record.project_id), record.show_crash_log
        ):
            return dataclasses.replace(record, crash_log_hidden=True)
        secrets = crash_log.secret_values(services.ecs.registered(record.task_definition_arn), record.container)
        messages = services.logs.last_messages(located[0].group, located[0].stream(record.task_arn))
    except Exception:
        deployer.logger.warning("could not read the crashed app's log", extra={"mr": record.key}, exc_info=True)
        return record
    return dataclasses.replace(record, crash_log=crash_log.last_lines(messages, secrets))


def _publish(deployer: Deployer, record: Record) -> None:
    if needs_publish(record):  # else the MR shows it already: no token read, no GitLab client, no call
        deployer.publish(record, strict=True)


def _route_live_app(deployer: Deployer, record: Record, task: TaskEvent, now: int) -> Record:
    """Address mode: the app's IP into its target group, and the host's own rule as soon as the
    load balancer finds it healthy (until then the catch-all rule shows the waking page)."""
    elb = deployer.services.elb
    if not task.private_ip:
        caveat = "ECS reported no IP address for the task, so its address has nothing to route to."
        return lifecycle.went_live(record, task, url=record.url, url_note=caveat, now=now)
    target = f"{task.private_ip}:{record.port}"
    live = lifecycle.went_live(record, task, url=record.url, url_note="", now=now, routed_target=target)
    try:
        if not live.target_group_arn:
            raise TargetGroupGone("no target group recorded")
        health = elb.route_to(live.target_group_arn, task.private_ip, record.port)
    except TargetGroupGone:  # the sweep removed it while this app launched: settle makes it again
        try:
            return routes.look_at_health(elb, routes.settle(elb, dataclasses.replace(live, target_group_arn="")))
        except NoRoute as refused:
            caveat = refused.problem("so the app runs but its address has no route; the reconciler tries again")
            return dataclasses.replace(live, url_note=caveat, target_group_arn="")
    return routes.look_at_health(elb, live, health)

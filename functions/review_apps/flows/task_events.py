"""A task changed state: what it means is decided in lifecycle.task_events; this records it,
moves or deletes the deadline's schedule, cleans up, and tells the MR. Failures raise, so
EventBridge's retries and the dead-letter queue keep the event."""

from __future__ import annotations

import dataclasses
import time

from review_apps import lifecycle
from review_apps.adapters.elb import NoRoute, TargetGroupGone
from review_apps.events import TaskEvent
from review_apps.flows.deploy import Deployer
from review_apps.flows.outcome import Outcome, Result
from review_apps.flows.retry import until_written
from review_apps.lifecycle import addresses, crash_log, sleep
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
        if record.target_group_arn and updated.stop_reason in (StopReason.MERGED, StopReason.CLOSED):
            services.elb.remove_route(record.target_group_arn, [record.rule_arn])
            updated = addresses.unrouted(updated)
        elif record.target_group_arn:
            services.elb.unroute(record.target_group_arn)
            updated = dataclasses.replace(updated, routed_target="")
            wake_group = services.settings.wake_target_group_arn
            asleep = sleep.after_ttl(updated) if wake_group and record.rule_arn else updated
            if asleep.rule_to_wake and not record.rule_to_wake:  # its TTL ran out: visits wake it now
                services.elb.forward(record.rule_arn, wake_group)
            updated = asleep
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
        if not crash_log.may_show(services.gitlab.visibility(record.project_id), record.show_crash_log):
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
    """Address mode: the app's IP behind its host; the address on the MR stays the same."""
    elb = deployer.services.elb
    if not task.private_ip:
        caveat = "ECS reported no IP address for the task, so its address has nothing to route to."
        return lifecycle.went_live(record, task, url=record.url, url_note=caveat, now=now)
    target = f"{task.private_ip}:{record.port}"
    try:
        if not record.target_group_arn:
            raise TargetGroupGone("no route recorded")
        elb.route_to(record.target_group_arn, task.private_ip, record.port)
    except TargetGroupGone:
        # The sweep removed the route while this app launched: make it again.
        try:
            route = elb.ensure_route(
                record.project_id, record.mr_iid, record.host, record.port, record.health_check_path or "/", None
            )
        except NoRoute as refused:
            caveat = refused.problem(
                "so the app runs but its address has no route; the reconciler tries again every minute"
            )
            return lifecycle.went_live(record, task, url=record.url, url_note=caveat, now=now)
        record = dataclasses.replace(record, target_group_arn=route.target_group_arn, rule_arn=route.rule_arn)
        elb.route_to(route.target_group_arn, task.private_ip, record.port)
    if record.rule_to_wake and record.rule_arn:  # woken by a visit: the host is the app's again
        elb.forward(record.rule_arn, record.target_group_arn)
        record = dataclasses.replace(record, rule_to_wake=False)
    return lifecycle.went_live(record, task, url=record.url, url_note="", now=now, routed_target=target)

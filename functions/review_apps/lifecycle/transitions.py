"""Record transitions: the record as it must be after each step of a review app's life."""

from __future__ import annotations

import dataclasses
import hashlib

from review_apps.lifecycle.planning import Compute, Launch
from review_apps.model.record import MergeRequestRef, Record
from review_apps.model.values import REQUESTED_STOPS, Status, StopReason
from review_apps.untrusted import code

FINISHED_RECORD_DAYS = 14  # then DynamoDB's TTL deletes it; the note on the MR stays


def launch_id(project_id: int, mr_iid: int, sha: str, rev: int) -> str:
    """Deterministic per (MR, commit, record revision): used as RunTask's clientToken and
    startedBy, so a redelivered event reuses the same launch and a task event finds its MR."""
    digest = hashlib.sha256(f"{project_id}:{mr_iid}:{sha}:{rev}".encode()).hexdigest()
    return digest[:32]


def base_record(record: Record | None, mr: MergeRequestRef) -> Record:
    if record is not None:
        return record
    return Record(project_id=mr.project_id, mr_iid=mr.iid)


def _predecessor(base: Record) -> tuple[str, str, str]:
    """(task, task definition, commit) the new launch must stop: the running one, or, if the
    record is itself an unfinished claim, the one that claim was going to stop."""
    if not base.active:
        return "", "", ""
    if base.task_arn:
        return base.task_arn, base.task_definition_arn, base.commit_sha
    return base.replaced_task_arn, base.replaced_task_definition_arn, base.replaced_commit


def claim_launch(
    record: Record | None,
    mr: MergeRequestRef,
    launch: Launch,
    now: int,
    notices: tuple[str, ...] = (),
    compute: Compute | None = None,
    host: str = "",
    sleep_after: int = 0,
    viewers: str = "",
) -> Record:
    """The record as it should be once the new launch is claimed (before RunTask).

    `host`: the MR's address in address mode. It is shown from now on, since it won't change.
    A replacement keeps its predecessor's route; an app that had stopped may have lost its
    route to the reconciler's sweep, so its launch looks for it afresh."""
    base = base_record(record, mr)
    spec = launch.spec
    replaced_task, replaced_definition, replaced_commit = _predecessor(base)
    keep_route = base.active and base.host == host
    return dataclasses.replace(
        base,
        status=Status.DEPLOYING,
        launch_id=launch_id(mr.project_id, mr.iid, launch.sha, base.rev),
        task_arn="",
        task_definition_arn="",
        commit_sha=launch.sha,
        source_project_id=mr.source_project_id,
        source_branch=mr.source_branch,
        project_path=mr.project_path,
        trigger=spec.trigger,
        container="",
        port=0,
        cpu_units=compute.cpu if compute else 0,
        memory_mib=compute.memory if compute else 0,
        architecture=compute.architecture if compute else "",
        capacity=compute.capacity if compute else spec.capacity,
        public_ip=compute.public_ip if compute else False,
        rate_microusd=round(compute.rate_per_hour * 1_000_000) if compute else 0,
        ttl_seconds=spec.ttl_seconds,
        ttl_capped_from=spec.ttl_capped_from,
        extended_seconds=0,
        launched_at=now,
        deadline=now + spec.ttl_seconds,  # moved to live_at + ttl once the app is live
        queued_at=0,
        queue_place=0,
        queue_detail="",
        retry_at=0,  # start_attempts carries on: a retry that fails again waits longer
        live_at=0,
        stopped_at=0,
        url=f"https://{host}" if host else "",
        url_note="",
        host=host,
        health_check_path=spec.health_check if host else "",
        viewers=viewers if host else "",
        target_group_arn=base.target_group_arn if keep_route else "",
        rule_arn=base.rule_arn if keep_route else "",
        # The predecessor's target, which this launch takes out when it stops the predecessor.
        routed_target=base.routed_target if keep_route else "",
        healthy_at=0,  # a new task: its host is the waker's until the load balancer finds it healthy
        sleep_after=sleep_after if host else 0,
        show_crash_log=spec.show_crash_log is True,
        crash_log_off=spec.show_crash_log is False,
        log_streams=[],  # a new launch: the last app's logs and crash are not this one's
        crash_log="",
        crash_log_hidden=False,
        asleep_since=0,
        event_version=0,
        stop_reason=StopReason.NONE,
        stop_detail="",
        problems=[],
        notices=list(notices),
        last_command="",
        replaced_commit=replaced_commit,
        replaced_task_arn=replaced_task,
        replaced_task_definition_arn=replaced_definition,
        mr_updated_at=max(base.mr_updated_at, launch.updated_at),
        expires_at=0,
        deployment_id=0,
        deployment_status="",
        commit_status="",
    )


def launched(
    record: Record,
    *,
    task_arn: str,
    task_definition_arn: str,
    container: str,
    port: int,
    wrapped: bool = False,
    unwrapped_because: str = "",
    target_group_arn: str = "",
    rule_arn: str = "",
    log_streams: tuple[str, ...] = (),
) -> Record:
    return dataclasses.replace(
        record,
        start_attempts=0,
        log_streams=list(log_streams),
        crash_log="",
        crash_log_hidden=False,
        target_group_arn=target_group_arn,
        rule_arn=rule_arn,
        task_arn=task_arn,
        task_definition_arn=task_definition_arn,
        container=container,
        port=port,
        timeout_wrapped=wrapped,
        unwrapped_because=unwrapped_because,
    )


def expiry(now: int) -> int:
    return now + FINISHED_RECORD_DAYS * 86400


def launch_failed(record: Record, problems: tuple[str, ...], now: int) -> Record:
    return dataclasses.replace(
        record, status=Status.FAILED, problems=list(problems), stopped_at=now, expires_at=expiry(now)
    )


def rejected(record: Record | None, mr: MergeRequestRef, sha: str, problems: tuple[str, ...], now: int) -> Record:
    """Nothing is launched; an app already running for an older commit keeps running."""
    base = base_record(record, mr)
    if base.active:
        return dataclasses.replace(base, problems=list(problems))
    return dataclasses.replace(
        base,
        status=Status.REJECTED,
        commit_sha=sha,
        source_project_id=mr.source_project_id,
        source_branch=mr.source_branch,
        problems=list(problems),
        expires_at=expiry(now),
        deployment_id=0,
        deployment_status="",
        commit_status="",
    )


def stop_requested(record: Record, reason: StopReason, now: int, detail: str = "", updated_at: int = 0) -> Record:
    return dataclasses.replace(
        record,
        status=Status.STOPPING,
        stop_reason=reason,
        stop_detail=detail,
        stopping_since=now,
        mr_updated_at=max(record.mr_updated_at, updated_at),
        last_command="",
    )


# After a start that failed for a passing reason, the next try waits this long, doubling per
# failure in a row up to the last (then every RETRY_PAUSES[-1] for as long as the MR wants an app).
RETRY_PAUSES = (60, 120, 240, 480, 900)


def start_postponed(claim: Record, failures: tuple[str, ...], now: int, waiting_since: int) -> Record:
    """RunTask found no capacity or was throttled: the MR goes back to the queue, at the place
    it had (`waiting_since`: when it first queued, or now for a direct launch), and the queue
    tries again no sooner than its backoff allows."""
    attempts = claim.start_attempts + 1
    pause = RETRY_PAUSES[min(attempts, len(RETRY_PAUSES)) - 1]
    reason = code(("; ".join(failures) or "RunTask started no task")[:300])
    return dataclasses.replace(
        claim,
        status=Status.QUEUED,
        launch_id="",
        task_arn="",
        task_definition_arn="",
        launched_at=0,
        deadline=0,
        queued_at=waiting_since or now,
        queue_detail=f"AWS could not start the task just now: {reason}; it tries again in "
        f"{pause // 60} minute{'s' if pause >= 120 else ''}",
        start_attempts=attempts,
        retry_at=now + pause,
    )


def vanished(record: Record, now: int) -> Record:
    """The record's task is gone and ECS no longer describes it (its events were lost)."""
    if not record.task_arn and record.stop_reason in REQUESTED_STOPS:
        # Stopped (merged, closed…) while its launch was in flight; the launch stopped its own task.
        return dataclasses.replace(record, status=Status.STOPPED, stopped_at=now, expires_at=expiry(now))
    if not record.task_arn:
        return launch_failed(
            record,
            ("The launch was interrupted before a task started. Push or re-run the pipeline to try again.",),
            now,
        )
    status = Status.STOPPED if record.live_at or record.stop_reason in REQUESTED_STOPS else Status.FAILED
    if record.stop_reason == StopReason.ASLEEP:
        return dataclasses.replace(record, status=Status.ASLEEP, stopped_at=now, asleep_since=now, expires_at=0)
    return dataclasses.replace(
        record,
        status=status,
        stopped_at=now,
        stop_reason=record.stop_reason or StopReason.UNKNOWN,
        stop_detail=record.stop_detail or "the task is gone and ECS no longer describes it",
        expires_at=expiry(now),
    )


def queued(claim: Record, before: Record | None, detail: str) -> Record:
    """`claim` found every slot taken: it waits, keeping its place if it was waiting already."""
    queued_at, place = claim.launched_at, 0
    if before is not None and before.queued:
        queued_at, place = before.queued_at, before.queue_place
    return dataclasses.replace(
        claim,
        status=Status.QUEUED,
        launch_id="",
        launched_at=0,
        deadline=0,
        queued_at=queued_at,
        queue_place=place,
        queue_detail=detail,
    )


def left_queue(record: Record, reason: StopReason, detail: str, now: int, updated_at: int = 0) -> Record:
    """A queued app that will not start after all (merged, closed, unlabeled, stopped)."""
    return dataclasses.replace(
        record,
        status=Status.STOPPED,
        stop_reason=reason,
        stop_detail=detail,
        stopped_at=now,
        mr_updated_at=max(record.mr_updated_at, updated_at),
        last_command="",
        expires_at=expiry(now),
        queue_place=0,
    )

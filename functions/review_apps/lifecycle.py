"""Every rule of a review app's life, as pure functions.

Handlers ask two kinds of question here:
- a GitLab event arrived: `route_gitlab_event` (no I/O needed), then `plan_deploy` / `plan_stop`
  once the record and the spec are known;
- an ECS task changed state: `on_task_event`, then `went_live` / `stopped`.
Each answer is data (Ignore, Launch, Reject, a new Record…); the handlers carry it out.
Nothing in this module reads the clock, the network or the environment.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass

from review_apps.durations import DurationError, format_duration, format_utc, parse_duration
from review_apps.models import (
    GitLabEvent,
    MergeRequestEvent,
    MergeRequestRef,
    NoteEvent,
    OtherEvent,
    PipelineEvent,
    Record,
    Status,
    TaskEvent,
)
from review_apps.spec import Spec, SpecProblems


class StopReason:
    TTL = "ttl"
    REPLACED = "replaced"
    MERGED = "merged"
    CLOSED = "closed"
    CRASHED = "crashed"
    FAILED_TO_START = "failed_to_start"
    SPOT = "spot"
    STOPPED_OUTSIDE = "stopped_outside"
    UNLABELED = "unlabeled"
    COMMAND = "command"
    UNKNOWN = "unknown"

    # Stops we asked for ourselves: the app did nothing wrong.
    REQUESTED = frozenset({REPLACED, MERGED, CLOSED, UNLABELED, COMMAND})


# The reason the deadline's schedule gives StopTask, so a stop at the deadline reads as one.
DEADLINE_STOP_REASON = "Review app reached its deadline (time to live ended)"
FINISHED_RECORD_DAYS = 14  # then DynamoDB's TTL deletes it; the note on the MR stays
TTL_EXIT_CODE = 124  # GNU/BusyBox `timeout` when the limit expires
KILLED_EXIT_CODE = 137  # `timeout -k` had to SIGKILL an app that ignored SIGTERM


@dataclass(frozen=True)
class Ignore:
    reason: str


@dataclass(frozen=True)
class ConsiderDeploy:
    """The event may start or replace an app; the spec and the record decide (plan_deploy)."""

    mr: MergeRequestRef
    sha: str
    cause: str  # opened | pushed | pipeline | edited (labels or draft status changed)
    updated_at: int = 0  # MR events: when GitLab made the change they report
    labels: tuple[str, ...] = ()  # the MR's labels now
    draft: bool = False
    labels_added: tuple[str, ...] = ()
    labels_removed: tuple[str, ...] = ()
    became_ready: bool = False


@dataclass(frozen=True)
class StopApp:
    mr: MergeRequestRef
    reason: str
    updated_at: int = 0
    by: str = ""  # who asked, for a /review-app stop


COMMAND_PREFIX = "/review-app"
DEVELOPER_ACCESS = 30  # GitLab's access level for Developer
HELP = (
    "`/review-app deploy` launches (or relaunches) the app for the MR's latest commit; "
    "`/review-app stop` stops it; `/review-app extend 1h` lets it live longer (up to the install's maximum time "
    "to live); `/review-app status` says where it is; `/review-app help` shows this. "
    "Members with Developer access or more can use them."
)


@dataclass(frozen=True)
class Command:
    """A `/review-app …` comment on a merge request."""

    mr: MergeRequestRef
    verb: str  # deploy | stop | status | help | extend, or what was typed
    argument: str
    author_id: int
    author: str


def parse_command(text: str) -> tuple[str, str] | None:
    """(verb, argument) when the comment's first line is a /review-app command."""
    first = text.strip().splitlines()[0].strip() if text.strip() else ""
    if first != COMMAND_PREFIX and not first.startswith(COMMAND_PREFIX + " "):
        return None
    words = first[len(COMMAND_PREFIX):].split(maxsplit=1)
    return (words[0].lower() if words else "help", words[1].strip() if len(words) > 1 else "")


@dataclass(frozen=True)
class Extend:
    mr: MergeRequestRef
    seconds: int
    by: str


def answer_command(
    command: Command, access_level: int | None, record: Record | None
) -> str | StopApp | ConsiderDeploy | Extend:
    """What a command does: a text for the note, a stop, a deploy to plan, or an extension."""
    who = f"@{command.author}" if command.author else "You"
    if access_level is None or access_level < DEVELOPER_ACCESS:
        return (f"{who}, sorry: only members of this project with Developer access or more can steer its "
                "review app.")
    if command.verb == "stop":
        # No event time: a person's command is never "older" than an MR event.
        return StopApp(command.mr, StopReason.COMMAND, by=command.author)
    if command.verb == "deploy":
        return ConsiderDeploy(command.mr, "", "command")
    if command.verb == "status":
        if record is None or not record.status:
            return f"{who}: nothing has been deployed for this merge request yet."
        summary = {
            Status.LIVE: f"live at {record.url} until {format_utc(record.deadline)}",
            Status.DEPLOYING: "deploying",
            Status.STOPPING: "stopping",
            Status.QUEUED: f"queued (number {record.queue_place or 1} in line)",
        }.get(record.status, record.status)
        return f"{who}: the review app for commit `{record.commit_sha[:8]}` is {summary}."
    if command.verb == "extend":
        try:
            seconds = parse_duration(command.argument)
        except DurationError:
            return f"{who}: say how much longer, e.g. `/review-app extend 1h` or `/review-app extend 30m`."
        return Extend(command.mr, seconds, command.author)
    prefix = "" if command.verb == "help" else f"`{command.verb}` is not a review-app command. "
    return f"{who}: {prefix}{HELP}"


def extended(record: Record | None, ask: Extend, max_ttl: int) -> Record | str:
    """The record with a later deadline, or why it cannot be extended.

    The container's own `timeout` is set to the install's maximum TTL (a running timer cannot
    be changed), so the real end is `deadline`, which the reconciler enforces every minute;
    an extension moves the deadline, never past the maximum."""
    who = f"@{ask.by}" if ask.by else "You"
    if record is not None and record.queued:
        return f"{who}: the app has not started yet (it is queued); it gets its full time to live once it starts."
    if record is None or record.status not in (Status.DEPLOYING, Status.LIVE):
        return f"{who}: there is no running review app to extend. `/review-app deploy` starts one."
    start = record.live_at or record.launched_at
    ttl = min(record.ttl_seconds + ask.seconds, max_ttl)
    added = ttl - record.ttl_seconds
    if added <= 0:
        return (f"{who}: the app already has this install's maximum time to live ({format_duration(max_ttl)}); "
                f"it stops at {format_utc(record.deadline)}.")
    answer = f"{who}: extended by {format_duration(added)}; the app now stops at {format_utc(start + ttl)}."
    if added < ask.seconds:
        answer += f" (Capped: this install allows at most {format_duration(max_ttl)} in all.)"
    return dataclasses.replace(
        record, ttl_seconds=ttl, extended_seconds=record.extended_seconds + added, deadline=start + ttl,
        last_command=answer,
    )


def with_answer(record: Record | None, mr: MergeRequestRef, answer: str) -> Record:
    return dataclasses.replace(_base(record, mr), last_command=answer)


@dataclass(frozen=True)
class Launch:
    spec: Spec
    sha: str
    updated_at: int = 0


@dataclass(frozen=True)
class Compute:
    """What a launch runs on, decided once the task definition is derived."""

    cpu: int
    memory: int
    architecture: str
    capacity: str
    public_ip: bool
    rate_per_hour: float


@dataclass(frozen=True)
class Reject:
    problems: tuple[str, ...]


# --------------------------------------------------------------------------- GitLab events

FORK_PROBLEM = (
    "This merge request comes from a fork (project {source}). Review apps do not run code from forks "
    "by default: it would run with this install's review-app AWS roles and network. An administrator "
    "can opt in by deploying the stack with `AllowForks=true`."
)


def admitted(mr: MergeRequestRef, allowlist: tuple[str, ...]) -> Ignore | None:
    """None when the MR's project may have review apps under the install's allowlist."""
    if not allowlist or str(mr.project_id) in allowlist or (mr.project_path and mr.project_path in allowlist):
        return None
    return Ignore(f"project {mr.project_path or mr.project_id} is not in this install's project allowlist")



def route_gitlab_event(event: GitLabEvent) -> Ignore | ConsiderDeploy | StopApp | Command:
    if isinstance(event, MergeRequestEvent):
        action = event.action
        about = {"updated_at": event.updated_at, "labels": event.labels, "draft": event.draft}
        if action in ("open", "reopen"):
            return ConsiderDeploy(event.mr, event.head_sha, "opened", **about)
        if action == "update":
            if event.pushed:
                return ConsiderDeploy(event.mr, event.head_sha, "pushed", **about)
            if event.labels_added or event.labels_removed or event.became_ready:
                # Whether this matters depends on the spec's `label:` and `drafts:`.
                return ConsiderDeploy(
                    event.mr, event.head_sha, "edited", **about, labels_added=event.labels_added,
                    labels_removed=event.labels_removed, became_ready=event.became_ready,
                )
            return Ignore("merge request edited without new commits: nothing to deploy")
        if action == "merge":
            return StopApp(event.mr, StopReason.MERGED, event.updated_at)
        if action == "close":
            return StopApp(event.mr, StopReason.CLOSED, event.updated_at)
        return Ignore(f"merge request action '{action or 'none'}' needs no review app change")
    if isinstance(event, PipelineEvent):
        if event.mr is None:
            return Ignore("pipeline is not for a merge request")
        if event.status != "success":
            return Ignore(f"pipeline status is '{event.status}'; review apps deploy when it succeeds")
        return ConsiderDeploy(event.mr, event.sha, "pipeline")
    if isinstance(event, NoteEvent):
        if event.mr is None:
            return Ignore(f"comment on a {event.noteable_type}, not on a merge request")
        if event.system:
            return Ignore("system notes are not commands")
        parsed = parse_command(event.text)
        if parsed is None:
            return Ignore("comment is not a /review-app command")
        return Command(event.mr, parsed[0], parsed[1], event.author_id, event.author)
    assert isinstance(event, OtherEvent)
    return Ignore(f"'{event.object_kind}' events are not used by review apps")


def plan_deploy(
    ask: ConsiderDeploy,
    spec: Spec | SpecProblems | None,
    record: Record | None,
    *,
    mr_state: str,
    mr_head_sha: str,
    allow_forks: bool = False,
) -> Ignore | Reject | Launch | StopApp:
    """Decide whether `ask` launches (or, for a removed label, stops) an app. `mr_state` and
    `mr_head_sha` are GitLab's current view."""
    if ask.cause == "queue" and (record is None or not record.queued):
        return Ignore("this merge request is no longer waiting in the queue")
    if mr_state != "opened":
        if ask.cause == "queue":  # its merge or close event was lost: it must not wait forever
            return StopApp(ask.mr, StopReason.MERGED if mr_state == "merged" else StopReason.CLOSED)
        return Ignore(f"merge request is {mr_state}")
    if record is not None and ask.updated_at and ask.updated_at < record.mr_updated_at:
        return Ignore("this merge request event is older than one already applied")
    if ask.sha != mr_head_sha:
        return Ignore(f"commit {ask.sha[:8]} is no longer the merge request's head ({mr_head_sha[:8]})")
    if spec is None:
        if ask.cause == "queue":  # waiting for nothing would hold its place forever
            return Reject((f"`.gitlab/review-app.yml` no longer exists at commit `{ask.sha[:8]}`, so the queued "
                           "app was not started. Add the file back to get a review app.",))
        return Ignore("no .gitlab/review-app.yml at this commit: review apps are off for this merge request")
    problems: tuple[str, ...] = ()
    if ask.mr.is_fork and not allow_forks:
        problems = (FORK_PROBLEM.format(source=ask.mr.source_project_id),)
    elif isinstance(spec, SpecProblems):
        problems = spec.problems
    if problems:
        if record is not None and record.status == Status.REJECTED and record.commit_sha == ask.sha:
            return Ignore("this commit's problems are already on the merge request")
        return Reject(problems)
    # Someone asked for it, or it already passed the gates when it was queued.
    explicit = ask.cause in ("command", "queue")
    if spec.label and spec.label not in ask.labels and not explicit:
        if spec.label in ask.labels_removed and record is not None and (record.active or record.queued):
            return StopApp(ask.mr, StopReason.UNLABELED, ask.updated_at)
        return Ignore(f"the merge request does not have the `{spec.label}` label")
    if ask.draft and not spec.drafts and not explicit:
        return Ignore("draft merge requests get no automatic review app (the spec can allow them with `drafts: true`)")
    if explicit:
        pass
    elif ask.cause == "edited":
        # Adding the label, or marking the MR ready, deploys the head commit now, whatever the trigger.
        if not ((spec.label and spec.label in ask.labels_added) or ask.became_ready):
            return Ignore("merge request edited without new commits: nothing to deploy")
    elif spec.trigger == "pipeline" and ask.cause != "pipeline":
        return Ignore("spec trigger is 'pipeline': waiting for this commit's pipeline to succeed")
    elif spec.trigger == "merge_request" and ask.cause == "pipeline":
        return Ignore("spec trigger is 'merge_request': pipelines do not deploy")
    if record is not None and record.active and record.commit_sha == ask.sha and not explicit:
        return Ignore(f"commit {ask.sha[:8]} is already deployed or deploying")
    if record is not None and record.queued and record.commit_sha == ask.sha and ask.cause != "queue":
        return Ignore(f"commit {ask.sha[:8]} is already queued (number {record.queue_place or 1} in line)")
    return Launch(spec=spec, sha=ask.sha, updated_at=ask.updated_at)


def plan_stop(record: Record | None, updated_at: int = 0) -> Ignore | Record:
    """The record to stop, or why there is nothing to stop."""
    if record is None or not (record.active or record.queued):
        return Ignore("no review app is running for this merge request")
    if updated_at and updated_at < record.mr_updated_at:
        return Ignore("this merge request event is older than one already applied")
    if record.status == Status.STOPPING:
        return Ignore("the review app is already stopping")
    return record


# --------------------------------------------------------------------------- record transitions


def launch_id(project_id: int, mr_iid: int, sha: str, rev: int) -> str:
    """Deterministic per (MR, commit, record revision): used as RunTask's clientToken and
    startedBy, so a redelivered event reuses the same launch and a task event finds its MR."""
    digest = hashlib.sha256(f"{project_id}:{mr_iid}:{sha}:{rev}".encode()).hexdigest()
    return digest[:32]


def _base(record: Record | None, mr: MergeRequestRef) -> Record:
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
) -> Record:
    """The record as it should be once the new launch is claimed (before RunTask)."""
    base = _base(record, mr)
    spec = launch.spec
    replaced_task, replaced_definition, replaced_commit = _predecessor(base)
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
        live_at=0,
        stopped_at=0,
        url="",
        url_note="",
        event_version=0,
        stop_reason="",
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


# --------------------------------------------------------------------------- caps and the queue


@dataclass(frozen=True)
class Caps:
    """The most review apps running at once; 0 means no cap."""

    overall: int = 0
    per_project: int = 0


def slot_scopes(caps: Caps, project_id: int) -> tuple[tuple[str, int], ...]:
    """(scope, cap) pairs an app of this project counts against."""
    scopes = []
    if caps.overall:
        scopes.append(("all", caps.overall))
    if caps.per_project:
        scopes.append((f"project/{project_id}", caps.per_project))
    return tuple(scopes)


def cap_detail(scope: str, cap: int) -> str:
    """Why an app waits, for the note."""
    apps = "review app" if cap == 1 else "review apps"
    if scope == "all":
        return f"this install runs at most {cap} {apps} at once"
    return f"this project may run at most {cap} {apps} at once"


class Slot:
    TAKE = "take"  # a new app: only if every scope is below its cap
    KEEP = "keep"  # a new commit for an app that runs already: it keeps its slot
    RELEASE = "release"
    NONE = ""


def slot_change(before: Record | None, after: Record) -> str:
    """What a write of `after` (over `before`) does to the running slots."""
    was_running = before is not None and before.active
    if after.status == Status.DEPLOYING and (before is None or before.launch_id != after.launch_id):
        return Slot.KEEP if was_running else Slot.TAKE
    if was_running and not after.active:
        return Slot.RELEASE
    return Slot.NONE


def queued(claim: Record, before: Record | None, detail: str) -> Record:
    """`claim` found every slot taken: it waits, keeping its place if it was waiting already."""
    waiting = before is not None and before.queued
    return dataclasses.replace(
        claim,
        status=Status.QUEUED,
        launch_id="",
        launched_at=0,
        deadline=0,
        queued_at=before.queued_at if waiting else claim.launched_at,
        queue_place=before.queue_place if waiting else 0,
        queue_detail=detail,
    )


def queue_order(records: list[Record]) -> list[Record]:
    """Waiting records, first come first served."""
    return sorted((r for r in records if r.queued), key=lambda r: (r.queued_at, r.project_id, r.mr_iid))


def left_queue(record: Record, reason: str, detail: str, now: int, updated_at: int = 0) -> Record:
    """A queued app that will not start after all (merged, closed, unlabeled, stopped)."""
    return dataclasses.replace(
        record, status=Status.STOPPED, stop_reason=reason, stop_detail=detail, stopped_at=now,
        mr_updated_at=max(record.mr_updated_at, updated_at), last_command="", expires_at=_expiry(now),
        queue_place=0,
    )


def launched(
    record: Record, *, task_arn: str, task_definition_arn: str, container: str, port: int, wrapped: bool = False,
    unwrapped_because: str = "",
) -> Record:
    return dataclasses.replace(
        record, task_arn=task_arn, task_definition_arn=task_definition_arn, container=container, port=port,
        timeout_wrapped=wrapped, unwrapped_because=unwrapped_because,
    )


def _expiry(now: int) -> int:
    return now + FINISHED_RECORD_DAYS * 86400


def launch_failed(record: Record, problems: tuple[str, ...], now: int) -> Record:
    return dataclasses.replace(
        record, status=Status.FAILED, problems=list(problems), stopped_at=now, expires_at=_expiry(now)
    )


def rejected(
    record: Record | None, mr: MergeRequestRef, sha: str, problems: tuple[str, ...], now: int
) -> Record:
    """Nothing is launched; an app already running for an older commit keeps running."""
    base = _base(record, mr)
    if base.active:
        return dataclasses.replace(base, problems=list(problems))
    return dataclasses.replace(
        base,
        status=Status.REJECTED,
        commit_sha=sha,
        source_project_id=mr.source_project_id,
        source_branch=mr.source_branch,
        problems=list(problems),
        expires_at=_expiry(now),
        deployment_id=0,
        deployment_status="",
        commit_status="",
    )


def stop_requested(record: Record, reason: str, detail: str = "", updated_at: int = 0) -> Record:
    return dataclasses.replace(
        record, status=Status.STOPPING, stop_reason=reason, stop_detail=detail,
        mr_updated_at=max(record.mr_updated_at, updated_at), last_command="",
    )


def vanished(record: Record, now: int) -> Record:
    """The record's task is gone and ECS no longer describes it (its events were lost)."""
    if not record.task_arn and record.stop_reason in StopReason.REQUESTED:
        # Stopped (merged, closed…) while its launch was in flight; the launch stopped its own task.
        return dataclasses.replace(record, status=Status.STOPPED, stopped_at=now, expires_at=_expiry(now))
    if not record.task_arn:
        return launch_failed(
            record, ("The launch was interrupted before a task started. Push or re-run the pipeline to try again.",),
            now,
        )
    status = Status.STOPPED if record.live_at or record.stop_reason in StopReason.REQUESTED else Status.FAILED
    return dataclasses.replace(
        record,
        status=status,
        stopped_at=now,
        stop_reason=record.stop_reason or StopReason.UNKNOWN,
        stop_detail=record.stop_detail or "the task is gone and ECS no longer describes it",
        expires_at=_expiry(now),
    )


# --------------------------------------------------------------------------- ECS task events


@dataclass(frozen=True)
class WentLive:
    pass


@dataclass(frozen=True)
class Stopped:
    pass


def on_task_event(event: TaskEvent, record: Record | None) -> Ignore | WentLive | Stopped:
    if record is None:
        return Ignore("no review app is recorded for this task's merge request")
    if event.task_arn != record.task_arn and (not event.started_by or event.started_by != record.launch_id):
        return Ignore("task is not the merge request's current review app")
    if record.status not in Status.ACTIVE:
        return Ignore(f"review app is already {record.status}")
    if event.version <= record.event_version:
        return Ignore(f"event version {event.version} is not newer than {record.event_version}")
    if event.last_status == "STOPPED":
        return Stopped()
    if event.last_status == "RUNNING" and record.status == Status.DEPLOYING:
        return WentLive()
    return Ignore(f"task state {event.last_status} changes nothing on the merge request")


def app_url(private_ip: str | None, public_ip: str | None, port: int, want_public: bool) -> tuple[str, str]:
    """(url, caveat). A missing public IP is said out loud rather than silently swapped."""
    if want_public and public_ip:
        return f"http://{public_ip}:{port}", ""
    if not private_ip:
        return "", "ECS reported no IP address for the task"
    caveat = ""
    if want_public:
        caveat = "No public IP was assigned (is the subnet public?); this address works only inside the VPC."
    return f"http://{private_ip}:{port}", caveat


def went_live(record: Record, event: TaskEvent, *, url: str, url_note: str, now: int) -> Record:
    started = int(event.started_at.timestamp()) if event.started_at else now
    return dataclasses.replace(
        record,
        status=Status.LIVE,
        task_arn=event.task_arn,
        event_version=event.version,
        live_at=started,
        deadline=started + record.ttl_seconds,
        url=url,
        url_note=url_note,
    )


def explain_stop(event: TaskEvent, record: Record, now: int) -> tuple[str, str]:
    """(StopReason, detail in plain words) for a STOPPED task event."""
    app = event.container(record.container) if record.container else None
    exit_code = app.exit_code if app else None
    ecs_reason = (event.stopped_reason or "").strip()
    if event.stop_code in ("SpotInterruption", "TerminationNotice"):
        return StopReason.SPOT, "AWS reclaimed the Fargate Spot capacity it was running on"
    if record.status == Status.STOPPING and record.stop_reason:
        return record.stop_reason, record.stop_detail
    if event.stop_code == "TaskFailedToStart" or (
        exit_code is None and ecs_reason.startswith(("CannotPull", "ResourceInitializationError", "CannotStart"))
    ):
        return StopReason.FAILED_TO_START, ecs_reason or "ECS gave no reason"
    if ecs_reason.startswith(DEADLINE_STOP_REASON) or exit_code == TTL_EXIT_CODE:
        return StopReason.TTL, ""
    if exit_code == KILLED_EXIT_CODE and now >= record.deadline:
        return StopReason.TTL, "the app ignored SIGTERM and was killed"
    if event.stop_code == "UserInitiated":
        return StopReason.STOPPED_OUTSIDE, ecs_reason or "stopped through the ECS API or console"
    if exit_code is not None:
        container = app.name if app else "app"
        detail = f"container `{container}` exited with code {exit_code}"
        if ecs_reason:
            detail += f" ({ecs_reason})"
        return StopReason.CRASHED, detail
    return StopReason.UNKNOWN, ecs_reason or "ECS gave no reason"


def stopped(record: Record, event: TaskEvent, now: int) -> Record:
    """The record once its task has stopped. The STOPPED event says on its own whether the app
    ever started (`startedAt`), so the outcome is the same whether or not RUNNING came first."""
    reason, detail = explain_stop(event, record, now)
    at = int(event.stopped_at.timestamp()) if event.stopped_at else now
    live_at = record.live_at or (int(event.started_at.timestamp()) if event.started_at else 0)
    status = Status.STOPPED if live_at or reason in StopReason.REQUESTED else Status.FAILED
    url = record.url
    if live_at and not url and event.private_ip and record.port:
        url = f"http://{event.private_ip}:{record.port}"
    return dataclasses.replace(
        record,
        status=status,
        task_arn=event.task_arn,
        event_version=event.version,
        live_at=live_at,
        deadline=live_at + record.ttl_seconds if live_at else record.deadline,
        url=url,
        stopped_at=at,
        stop_reason=reason,
        stop_detail=detail,
        expires_at=_expiry(now),
    )


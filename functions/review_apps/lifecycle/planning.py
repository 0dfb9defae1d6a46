"""Planning: given an ask, the spec and the record, launch, stop, reject, or ignore."""

from __future__ import annotations

from dataclasses import dataclass

from review_apps.lifecycle.queue import place_words
from review_apps.lifecycle.routing import ConsiderDeploy, Ignore, StopApp
from review_apps.model.record import Record
from review_apps.model.values import EXPLICIT_CAUSES, Cause, Status, StopReason
from review_apps.problems import Problems
from review_apps.spec import Spec
from review_apps.untrusted import code


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


FORK_PROBLEM = (
    "This merge request comes from a fork (project {source}). Review apps do not run code from forks "
    "by default: it would run with this install's review-app AWS roles and network. An administrator "
    "can opt in by deploying the stack with `AllowForks=true`."
)


def plan_deploy(
    ask: ConsiderDeploy,
    spec: Spec | Problems | None,
    record: Record | None,
    *,
    mr_state: str,
    mr_head_sha: str,
    allow_forks: bool = False,
) -> Ignore | Reject | Launch | StopApp:
    """Decide whether `ask` launches (or, for a removed label, stops) an app. `mr_state` and
    `mr_head_sha` are GitLab's current view."""
    if ask.cause == Cause.QUEUE and (record is None or not record.queued):
        return Ignore("this merge request is no longer waiting in the queue")
    if ask.cause == Cause.WAKE and not may_wake(record):
        if ask.review_requested:  # a review request starts no app that isn't asleep
            return Ignore("a review was requested, and the review app is not asleep: nothing to wake")
        return Ignore("the review app is not asleep")  # another visit woke it a moment ago
    if mr_state != "opened":
        if ask.cause == Cause.QUEUE:  # its merge or close event was lost: it must not wait forever
            return StopApp(ask.mr, StopReason.MERGED if mr_state == "merged" else StopReason.CLOSED)
        return Ignore(f"merge request is {mr_state}")
    if record is not None and ask.updated_at and ask.updated_at < record.mr_updated_at:
        return Ignore("this merge request event is older than one already applied")
    if ask.sha != mr_head_sha:
        return Ignore(f"commit {ask.sha[:8]} is no longer the merge request's head ({mr_head_sha[:8]})")
    if spec is None:
        if ask.cause == Cause.QUEUE:  # waiting for nothing would hold its place forever
            return Reject(
                (
                    f"`.gitlab/review-app.yml` no longer exists at commit `{ask.sha[:8]}`, so the queued "
                    "app was not started. Add the file back to get a review app.",
                )
            )
        return Ignore("no .gitlab/review-app.yml at this commit: review apps are off for this merge request")
    problems: tuple[str, ...] = ()
    if ask.mr.is_fork and not allow_forks:
        problems = (FORK_PROBLEM.format(source=ask.mr.source_project_id),)
    elif isinstance(spec, Problems):
        problems = spec.problems
    if problems or isinstance(spec, Problems):
        if record is not None and record.status == Status.REJECTED and record.commit_sha == ask.sha:
            return Ignore("this commit's problems are already on the merge request")
        return Reject(problems)
    if ask.review_requested and not spec.wake_on_review_request:
        return Ignore("a review was requested, and the spec says `wake_on_review_request: false`")
    # Someone asked for it, or it already passed the gates when it was queued.
    explicit = ask.cause in EXPLICIT_CAUSES
    if spec.label and spec.label not in ask.labels and not explicit:
        if spec.label in ask.labels_removed and record is not None and (record.active or record.queued):
            return StopApp(ask.mr, StopReason.UNLABELED, ask.updated_at)
        return Ignore(f"the merge request does not have the {code(spec.label)} label")
    if ask.draft and not spec.drafts and not explicit:
        return Ignore("draft merge requests get no automatic review app (the spec can allow them with `drafts: true`)")
    if explicit:
        pass
    elif ask.cause == Cause.EDITED:
        # Adding the label, or marking the MR ready, deploys the head commit now, whatever the trigger.
        if not ((spec.label and spec.label in ask.labels_added) or ask.became_ready):
            return Ignore("merge request edited without new commits: nothing to deploy")
    elif spec.trigger == "pipeline" and ask.cause != Cause.PIPELINE:
        return Ignore("spec trigger is 'pipeline': waiting for this commit's pipeline to succeed")
    elif spec.trigger == "merge_request" and ask.cause == Cause.PIPELINE:
        return Ignore("spec trigger is 'merge_request': pipelines do not deploy")
    if record is not None and record.active and record.commit_sha == ask.sha and not explicit:
        return Ignore(f"commit {ask.sha[:8]} is already deployed or deploying")
    if record is not None and record.queued and record.commit_sha == ask.sha and ask.cause != Cause.QUEUE:
        return Ignore(f"commit {ask.sha[:8]} is already queued ({place_words(record.queue_place)} in line)")
    return Launch(spec=spec, sha=ask.sha, updated_at=ask.updated_at)


def may_wake(record: Record | None) -> bool:
    """Asleep, or falling asleep: a visit starts it again."""
    return record is not None and (
        record.status == Status.ASLEEP or (record.status == Status.STOPPING and record.stop_reason == StopReason.ASLEEP)
    )


def plan_stop(record: Record | None, updated_at: int = 0) -> Ignore | Record:
    """The record to stop, or why there is nothing to stop."""
    if record is None or not (record.active or record.queued or record.status == Status.ASLEEP):
        return Ignore("no review app is running for this merge request")
    if updated_at and updated_at < record.mr_updated_at:
        return Ignore("this merge request event is older than one already applied")
    if record.status == Status.STOPPING:
        return Ignore("the review app is already stopping")
    return record

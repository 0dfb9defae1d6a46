"""What the merge request shows for a record: the note's text and the GitLab state around it.

Everything here is derived from the record alone, so any function can re-publish it at any
time (after a retry, from a later event) and GitLab converges to the same picture.
"""

from __future__ import annotations

import hashlib
import html
import re
from dataclasses import dataclass

from review_apps import sizes
from review_apps.cost import dollars, run_cost
from review_apps.durations import format_duration, format_utc
from review_apps.lifecycle import StopReason, crash_log
from review_apps.lifecycle.access import level_name
from review_apps.lifecycle.queue import place_words
from review_apps.model.record import Record
from review_apps.model.values import Status
from review_apps.untrusted import code, plain

COMMIT_STATUS_NAME = "review-app"


def note_marker(project_id: int, mr_iid: int) -> str:
    """Hidden in the note so it can be found again even if the record is lost."""
    return f"<!-- review-app:note project={project_id} mr={mr_iid} -->"


def _commit(sha: str) -> str:
    return f"`{sha[:8]}`"


def _relaunch_hint(record: Record) -> str:
    if record.trigger == "merge_request":
        return "To get a new one, comment `/review-app deploy` or push a commit."
    return "To get a new one, comment `/review-app deploy`, push a commit or run the merge request's pipeline again."


_REASONS = {
    StopReason.TTL: "its time to live ({ttl}) ran out",
    StopReason.MERGED: "the merge request was merged",
    StopReason.CLOSED: "the merge request was closed",
    StopReason.REPLACED: "a newer commit replaced it",
    StopReason.UNLABELED: "its label was removed from the merge request",
    StopReason.COMMAND: "{detail} stopped it with `/review-app stop`",
    StopReason.SPOT: "AWS reclaimed the Fargate Spot capacity it ran on",
    StopReason.CRASHED: "the app crashed: {detail}",
    StopReason.FAILED_TO_START: "the task failed to start: {detail}",
    StopReason.STOPPED_OUTSIDE: "it was stopped outside review apps: {detail}",
    StopReason.ASLEEP: "{detail}",
    StopReason.CANNOT_WAKE: "a visit could not wake it: {detail}",
    StopReason.UNKNOWN: "ECS stopped it: {detail}",
}

_HINTS = {
    StopReason.FAILED_TO_START: "Check that the image exists and the task execution role can pull it "
    "(and read its secrets and log group).",
    StopReason.CRASHED: "Check the app's logs in CloudWatch for why it exited.",
}


# ECS fetches a task's secrets (and private registry credentials) before any container starts.
SECRETS_NOT_FETCHED = (
    "ECS could not fetch the app's secrets (or registry credentials) before starting it. It fetches them with "
    "the task execution role: that role needs `ssm:GetParameters` on the project's parameters (and `kms:Decrypt` "
    "for their key), or `secretsmanager:GetSecretValue` on its secrets, and each one must exist in this Region "
    "(README, Settings and secrets)."
)


def stop_sentence(record: Record) -> str:
    template = _REASONS.get(record.stop_reason, _REASONS[StopReason.UNKNOWN])
    text = template.format(ttl=format_duration(record.ttl_seconds), detail=record.stop_detail or "no detail given")
    if record.stop_reason == StopReason.TTL and record.stop_detail:
        text += f" ({record.stop_detail})"
    return text


def _compute(record: Record) -> str:
    capacity = "Fargate Spot (AWS may interrupt it)" if record.capacity == "spot" else "on demand"
    extra = ", public IPv4" if record.public_ip else ""
    return f"{sizes.describe(record.cpu_units, record.memory_mib)}, {record.architecture}, {capacity}{extra}"


def cost_rate_line(record: Record) -> str:
    if not record.rate_microusd:
        return ""
    return f"Costs about {dollars(record.rate_microusd / 1e6)}/hour ({_compute(record)})."


def cost_total_line(record: Record) -> str:
    if not (record.rate_microusd and record.live_at and record.stopped_at):
        return ""
    seconds = max(record.stopped_at - record.live_at, 0)
    spent = run_cost(seconds, record.rate_microusd / 1e6)
    return f"It ran for {format_duration(seconds)} and cost about {dollars(spent)} ({_compute(record)})."


def sleep_line(record: Record) -> str:
    if not record.sleep_after:
        return ""
    return f"It sleeps after {format_duration(record.sleep_after)} without a visit; opening its address wakes it."


def awake_cost_line(record: Record) -> str:
    """Time awake and its cost, summed over wakes, against running the whole time (as of the
    latest sleep or stop: the note is a view of the record, which has no clock)."""
    if not (record.history and record.first_live_at and record.rate_microusd):
        return ""
    until = record.awake_counted_until
    if not until or until <= record.first_live_at:
        return ""
    whole = run_cost(until - record.first_live_at, record.rate_microusd / 1e6)
    if dollars(whole) == dollars(record.awake_cost_microusd / 1e6):
        return ""  # it never slept in that span: the two figures would be the same
    return (
        f"From {format_utc(record.first_live_at)} to {format_utc(until)} it was awake "
        f"{format_duration(record.awake_seconds)} in all, about {dollars(record.awake_cost_microusd / 1e6)}; "
        f"running the whole time would have cost about {dollars(whole)}."
    )


_NOW = {
    "capacity": "Fargate is finding capacity for the task…",
    "pulling": "pulling the image…",
    "starting": "starting the container…",
}
SLOW_PULL_SECONDS = 60


def phase_line(record: Record) -> str:
    """What a starting app is doing right now (one note edit per phase)."""
    return f"Now: {_NOW[record.phase]}" if record.phase in _NOW else ""


def start_line(record: Record) -> str:
    """How the start went, once live: `Started in 47s: 31s pulling the image, 9s starting, 7s until
    healthy. The address answered 52s after the merge request event.`"""
    created, pull_from, pull_to, live = (
        record.task_created_at,
        record.pull_started_at,
        record.pull_stopped_at,
        record.live_at,
    )
    if not (created and live > created):
        return ""
    healthy = record.healthy_at if record.host and record.healthy_at >= live else 0
    parts = []
    if pull_from and pull_to >= pull_from >= created and live >= pull_to:
        if pull_from - created:
            parts.append(f"{format_duration(pull_from - created)} waiting for capacity")
        parts.append(f"{format_duration(pull_to - pull_from)} pulling the image")
        parts.append(f"{format_duration(live - pull_to)} starting")
    if healthy and parts:
        parts.append(f"{format_duration(healthy - live)} until healthy")
    line = f"Started in {format_duration((healthy or live) - created)}" + (f": {', '.join(parts)}." if parts else ".")
    if pull_from and pull_to - pull_from > SLOW_PULL_SECONDS:
        line += " That pull is slow: see *Faster starts* in the review apps README for ways to cut it."
    waited = time_to_address(record)
    if healthy and waited is not None:
        line += f" The address answered {format_duration(waited)} after the merge request event."
    return line


def health_wait_line(record: Record) -> str:
    """Address mode: live, but the load balancer has not found it healthy yet (visits get the
    starting page until it does)."""
    if not (record.host and record.status == Status.LIVE and not record.healthy_at and record.routed_target):
        return ""
    return f"Now: waiting for the load balancer's health check (`{record.health_check_path or '/'}`) to pass…"


# An MR event GitLab dated longer than this before we claimed the launch is not what started it
# (a pipeline, a command, a visit or the queue did): the launch's own time is used then.
_EVENT_WINDOW_SECONDS = 600


def time_to_address(record: Record) -> int | None:
    """Seconds from the event that started this app (the MR event as GitLab dated it, else when
    the install claimed the launch) to the load balancer finding it healthy; None if unknown."""
    if not (record.host and record.healthy_at and record.launched_at):
        return None
    asked = record.launched_at
    if 0 <= record.launched_at - record.mr_updated_at <= _EVENT_WINDOW_SECONDS:
        asked = record.mr_updated_at
    return max(record.healthy_at - asked, 0)


def logs_line(record: Record) -> str:
    """Each container's logs, one click away (the CloudWatch console), once there is a task."""
    streams = [s for s in map(crash_log.LogStream.decode, record.log_streams) if s]
    if not (streams and record.task_arn):
        return ""
    links = ", ".join(f"[{code(plain(s.container, 40))}]({crash_log.console_url(s, record.task_arn)})" for s in streams)
    return f"Logs: {links}."


def crash_block(record: Record) -> str:
    """A crashed app's last log lines, collapsed, as inert text: in a code block GitLab renders no
    mention, link or markdown, and the fence is longer than any run of backticks in the lines."""
    if record.stop_reason != StopReason.CRASHED:
        return ""
    if record.crash_log_hidden and record.crash_log_off:
        return "Its last log lines are not shown here: the spec says `show_crash_log: false`. The log is linked above."
    if record.crash_log_hidden:
        return (
            "Its last log lines are not shown here, because anyone can read this project's merge requests; "
            "the log is linked above. To show them on the merge request, add `show_crash_log: true` to the spec."
        )
    if not record.crash_log:
        return ""
    runs = [len(run) for run in re.findall(r"`+", record.crash_log)]
    fence = "`" * max(3, max(runs, default=0) + 1)
    count = len(record.crash_log.splitlines())
    summary = html.escape(f"The last {count} lines of {plain(record.container, 40)}'s log")
    said = (
        "As the app printed them, with the values of secret-looking variables and the passwords in URLs masked; "
        "a secret the app prints under another name shows. `show_crash_log: false` in the spec hides them."
    )
    return f"<details><summary>{summary}</summary>\n\n{said}\n\n{fence}text\n{record.crash_log}\n{fence}\n\n</details>"


def viewers_line(record: Record) -> str:
    """Who can open the address (the install's sign-in setting when the app launched). In IP mode
    nothing signs visitors in: with a public IP, that is anyone who learns it."""
    if not record.host:
        if record.public_ip:
            return (
                "Its address is a public IP with no sign-in in front: anyone on the internet who has it can open "
                "it (an install in address mode signs visitors in with GitLab)."
            )
        return ""
    kind, _, level = record.viewers.partition(":")
    if kind == "members" and level.isdigit():
        project = record.project_path or "the project"
        return f"Only members of {project} ({level_name(int(level))} or above) can open it: they sign in with GitLab."
    if kind == "public":
        return "Anyone with the address can open it."
    return ""


def history_line(record: Record) -> str:
    return f"History: {'; '.join(record.history)}." if record.history else ""


def _problem_list(problems: list[str]) -> str:
    return "\n".join(f"- {p}" for p in problems)


def render_note(record: Record) -> str:
    marker = note_marker(record.project_id, record.mr_iid)
    commit = _commit(record.commit_sha)
    ttl = format_duration(record.ttl_seconds)
    if record.ttl_capped_from:
        ttl += f" (you asked for {format_duration(record.ttl_capped_from)}; the install allows at most {ttl})"
    if record.extended_seconds:
        ttl += f", extended by {format_duration(record.extended_seconds)}"
    lines: list[str]
    if record.status == Status.QUEUED:
        lines = [
            "### :hourglass: Review app: queued",
            "",
            f"Commit {commit} is **{place_words(record.queue_place)}** in the queue: {record.queue_detail}, and "
            "every slot is taken. It starts by itself as soon as a slot frees; nothing to do meanwhile.",
        ]
        if record.retry_at:  # not a full cap: a start that failed for a passing reason
            lines[2] = (
                f"Commit {commit} is **{place_words(record.queue_place)}** in the queue: {record.queue_detail}, "
                "keeping its place. Nothing to do meanwhile."
            )
    elif record.status == Status.DEPLOYING:
        lines = [
            "### :hourglass: Review app: deploying",
            "",
            f"Commit {commit} is starting on AWS Fargate. It will run for **{ttl}** and then stop by itself.",
        ]
        if record.host:
            lines[2:2] = [
                f"**{record.url}**",
                "",
                f"This address is the merge request's for as long as it is open. It answers once the task is "
                f"running and its health check (`{record.health_check_path or '/'}`) passes."
                + (f" {viewers_line(record)}" if viewers_line(record) else ""),
                "",
            ]
        if record.replaced_commit:
            lines.append(f"It replaces the app for commit {_commit(record.replaced_commit)}, which is being stopped.")
        lines += [line for line in (phase_line(record), logs_line(record)) if line]
        if record.history:
            lines.append(history_line(record))
    elif record.status == Status.ASLEEP or (
        record.status == Status.STOPPING and record.stop_reason == StopReason.ASLEEP
    ):
        since = record.asleep_since or record.stopped_at
        usual = f" (last time it took {format_duration(record.start_seconds)})" if record.start_seconds else ""
        lines = [
            "### :zzz: Review app: asleep"
            if record.status == Status.ASLEEP
            else "### :zzz: Review app: falling asleep",
            "",
            f"**{record.url}**",
            "",
            f"Commit {commit}: {stop_sentence(record)}, so it "
            + (f"has been asleep since {format_utc(since)} and costs nothing." if since else "is going to sleep.")
            + f" Opening the address wakes it{usual}; it then runs for up to "
            f"{format_duration(record.ttl_seconds - record.extended_seconds)} again."
            + (f" {viewers_line(record)}" if viewers_line(record) else ""),
        ]
        lines += [line for line in (awake_cost_line(record), history_line(record)) if line]
    elif record.status == Status.LIVE or (record.status == Status.STOPPING and record.live_at):
        lines = [
            "### :white_check_mark: Review app: live",
            "",
            f"**{record.url}**",
            "",
            f"Commit {commit}, live since {format_utc(record.live_at)}, "
            f"until **{format_utc(record.deadline)}** ({ttl})."
            + (f" {viewers_line(record)}" if viewers_line(record) else ""),
        ]
        if cost_rate_line(record):
            lines.append(cost_rate_line(record))
        if record.status == Status.LIVE:
            lines += [line for line in (start_line(record), health_wait_line(record)) if line]
        if logs_line(record):
            lines.append(logs_line(record))
        if record.status == Status.LIVE:
            lines += [line for line in (sleep_line(record), awake_cost_line(record), history_line(record)) if line]
        if record.url_note:
            lines.append(f"\n:warning: {record.url_note}")
        if record.health_note and record.status == Status.LIVE:
            lines.append(f"\n:warning: {record.health_note}")
        if record.status == Status.STOPPING:
            lines[0] = "### :stop_button: Review app: stopping"
            lines.append(f"\nIt is being stopped because {stop_sentence(record)}.")
    elif record.status == Status.STOPPING:
        lines = [
            "### :stop_button: Review app: stopping",
            "",
            f"The app for commit {commit} is being stopped because {stop_sentence(record)}.",
        ]
    elif record.status == Status.STOPPED and record.queued_at and not record.launched_at:
        lines = [
            "### :stop_button: Review app: taken out of the queue",
            "",
            f"The app for commit {commit} never started: it left the queue because {stop_sentence(record)}.",
        ]
        if record.stop_reason == StopReason.UNLABELED:
            lines += ["", "To get one, add the label again."]
        elif record.stop_reason not in (StopReason.MERGED, StopReason.CLOSED):
            lines += ["", _relaunch_hint(record)]
    elif record.status == Status.STOPPED:
        ran = ""
        if record.live_at and record.stopped_at:
            ran = f" It ran from {format_utc(record.live_at)} to {format_utc(record.stopped_at)}."
        lines = [
            "### :stop_button: Review app: stopped",
            "",
            f"The app for commit {commit} stopped because {stop_sentence(record)}.{ran}",
        ]
        lines += [part for line in (logs_line(record), crash_block(record)) if line for part in ("", line)]
        if awake_cost_line(record):
            lines += ["", awake_cost_line(record)]
        elif cost_total_line(record):
            lines += ["", cost_total_line(record)]
        if record.stop_reason == StopReason.UNLABELED:
            lines += ["", "To get a new one, add the label again."]
        elif record.stop_reason not in (StopReason.MERGED, StopReason.CLOSED):
            lines += ["", _relaunch_hint(record)]
    elif record.status == Status.FAILED:
        if record.problems:
            why = "\n" + _problem_list(record.problems)
            lines = ["### :x: Review app: could not start", "", f"Commit {commit} was not started:{why}"]
        else:
            lines = [
                "### :x: Review app: could not start",
                "",
                f"The app for commit {commit} never went live because {stop_sentence(record)}.",
            ]
            lines += [part for line in (logs_line(record), crash_block(record)) if line for part in ("", line)]
            hint = _HINTS.get(record.stop_reason)
            if record.stop_reason == StopReason.FAILED_TO_START and "ResourceInitializationError" in record.stop_detail:
                hint = SECRETS_NOT_FETCHED
            if hint:
                lines += ["", hint]
        lines += ["", _relaunch_hint(record)]
    elif record.status == Status.REJECTED:
        lines = [
            "### :warning: Review app: not deployed",
            "",
            f"Commit {commit} was not deployed:",
            _problem_list(record.problems),
            "",
            "Nothing was launched. Fix what is listed and push; the next commit is tried again.",
        ]
    else:
        lines = [
            "### Review app",
            "",
            "Nothing has been deployed for this merge request yet. Comment `/review-app help` to see what you can do.",
        ]
    if record.status in (Status.DEPLOYING, Status.LIVE) and record.deadline_unscheduled:
        lines += [
            "",
            ":warning: The schedule that stops this app at its deadline could not be made yet. The install "
            f"tries again every minute, and stops the app at {format_utc(record.deadline)} itself meanwhile.",
        ]
    if record.active and record.problems:
        lines += ["", ":warning: The latest commit was not deployed:", _problem_list(record.problems)]
    if record.notices and record.status in (Status.DEPLOYING, Status.LIVE):
        lines += ["", "Good to know:", _problem_list(record.notices)]
    if record.last_command:
        lines += ["", f"> {record.last_command}"]
    return marker + "\n" + "\n".join(lines) + "\n"


@dataclass(frozen=True)
class CommitStatus:
    state: str
    description: str
    target_url: str


@dataclass(frozen=True)
class GitLabView:
    """Everything GitLab should show for a record besides the note."""

    commit_status: CommitStatus | None
    deployment_status: str  # "" = no deployment for this record
    environment_url: str
    environment_stopped: bool


def gitlab_view(record: Record) -> GitLabView:
    status = record.status
    if status == Status.QUEUED:
        # No place in the text: GitLab refuses pending → pending, so it could not follow the queue.
        return GitLabView(CommitStatus("pending", "Review app queued for a free slot", ""), "", "", False)
    if status == Status.STOPPED and not record.launched_at:  # it left the queue before it started
        return GitLabView(CommitStatus("canceled", "Review app left the queue before it started", ""), "", "", False)
    if status == Status.DEPLOYING or (status == Status.STOPPING and not record.live_at):
        # A host is known from the launch on (address mode); an IP only once the app is live.
        url = record.url if record.host else ""
        return GitLabView(CommitStatus("running", "Review app is deploying", url), "running", url, False)
    if status == Status.ASLEEP or (status == Status.STOPPING and record.stop_reason == StopReason.ASLEEP):
        # The address still works: a visit wakes the app, so the environment stays available.
        asleep = CommitStatus("success", "Review app asleep; opening it wakes it", record.url)
        return GitLabView(asleep, "success", record.url, False)
    if status in (Status.LIVE, Status.STOPPING):
        live = CommitStatus("success", f"Review app live until {format_utc(record.deadline)}", record.url)
        return GitLabView(live, "success", record.url, False)
    if status == Status.STOPPED:
        if record.live_at:
            # The commit did get a working app; a later stop does not make the commit worse.
            worked = CommitStatus("success", "Review app ran and has stopped", record.url)
            return GitLabView(worked, "success", "", True)
        return GitLabView(CommitStatus("canceled", "Review app stopped before it went live", ""), "canceled", "", True)
    if status == Status.FAILED:
        failed = CommitStatus("failed", "Review app could not start", "")
        return GitLabView(failed, "failed" if record.deployment_id else "", "", bool(record.environment_id))
    return GitLabView(None, "", "", False)


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def commit_status_marker(record: Record, status: CommitStatus) -> str:
    # The description counts too: an extension changes "live until …" but not the state.
    return f"{record.commit_sha}:{status.state}:{digest(status.description)[:8]}"


def environment_wanted(view: GitLabView) -> str:
    """The environment state to publish: "available:<url>", "stopped", or "" for no change."""
    if view.environment_stopped:
        return "stopped"
    if view.deployment_status in ("running", "success"):
        return f"available:{view.environment_url}"
    return ""


def needs_publish(record: Record) -> bool:
    """Whether GitLab is behind the record (a publish failed or never ran): no I/O needed."""
    view = gitlab_view(record)
    if record.note_digest != digest(render_note(record)):
        return True
    if view.commit_status and record.commit_status != commit_status_marker(record, view.commit_status):
        return True
    if view.deployment_status and record.deployment_status != view.deployment_status:
        return True
    wanted = environment_wanted(view)
    if wanted == "stopped":
        return bool(record.environment_id) and record.environment_state != "stopped"
    return bool(wanted) and record.environment_state != wanted

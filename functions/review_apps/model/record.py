"""The one record we keep per merge request, and the reference to an MR it is about."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from review_apps.model.values import ACTIVE, Status, StopReason


@dataclass(frozen=True)
class MergeRequestRef:
    """Which MR an event is about. `project_id` is the target project, where the MR lives."""

    project_id: int
    iid: int
    source_project_id: int
    source_branch: str
    project_path: str

    @property
    def key(self) -> str:
        return f"{self.project_id}/{self.iid}"

    @property
    def is_fork(self) -> bool:
        return self.source_project_id != self.project_id


@dataclass
class Record:
    """Everything we know about one MR's review app, stored as one DynamoDB item.

    `rev` is the optimistic-lock counter: every write is conditional on the rev we read.
    """

    project_id: int
    mr_iid: int
    rev: int = 0
    status: Status = Status.NONE
    launch_id: str = ""
    task_arn: str = ""
    task_definition_arn: str = ""
    commit_sha: str = ""
    source_project_id: int = 0
    source_branch: str = ""
    project_path: str = ""
    trigger: str = ""
    container: str = ""
    port: int = 0
    # What the task runs on, and what that costs (micro-dollars per hour: DynamoDB has no floats).
    cpu_units: int = 0
    memory_mib: int = 0
    architecture: str = ""
    capacity: str = ""
    public_ip: bool = False
    rate_microusd: int = 0
    ttl_seconds: int = 0  # including any `/review-app extend`
    ttl_capped_from: int = 0
    extended_seconds: int = 0
    launched_at: int = 0
    deadline: int = 0  # when the app's schedule stops it (live_at + ttl_seconds once live)
    # Whether `timeout` inside the container also ends the app, and if not, why not.
    timeout_wrapped: bool = False
    unwrapped_because: str = ""
    # Waiting for a slot: since when (orders the queue), its place, and which cap is full.
    queued_at: int = 0
    queue_place: int = 0
    queue_detail: str = ""
    live_at: int = 0
    stopped_at: int = 0
    url: str = ""
    url_note: str = ""
    # Address mode: the MR's host on the load balancer, and what routes it to the app. The host
    # never changes; the target group and rule live while the MR has an app.
    host: str = ""
    health_check_path: str = ""
    # Who may open the address: "members:<lowest access level>" (sign-in with GitLab) or "public".
    viewers: str = ""
    # Where each container logs (crash_log.LogStream, encoded), and a crashed app's last log lines:
    # shown on the MR only where its readers may see them (crash_log_hidden otherwise).
    log_streams: list[str] = field(default_factory=list)
    # How the task is starting (while deploying), and how its start went (epoch seconds; 0 = unknown).
    phase: str = ""
    task_created_at: int = 0
    pull_started_at: int = 0
    pull_stopped_at: int = 0
    show_crash_log: bool = False  # the spec says `show_crash_log: true`
    crash_log_off: bool = False  # the spec says `show_crash_log: false`
    crash_log: str = ""
    crash_log_hidden: bool = False
    target_group_arn: str = ""
    rule_arn: str = ""
    routed_target: str = ""  # "ip:port" registered in the target group
    # When the load balancer first found this task's target healthy (0: not yet). Only then does
    # the host get a rule of its own; until then the catch-all rule sends visits to the waker.
    healthy_at: int = 0
    health_note: str = ""  # the load balancer's health check failing, in words (address mode)
    # Sleep and wake: how long without a visit before it sleeps (0 = never), since when it
    # sleeps, what it has cost awake so far (summed over wakes, micro-dollars) against since
    # when it could have run, a short history, and how long a start took last time.
    sleep_after: int = 0
    asleep_since: int = 0
    awake_seconds: int = 0
    awake_cost_microusd: int = 0
    awake_counted_until: int = 0  # the end of the last awake stretch counted in the two above
    first_live_at: int = 0
    start_seconds: int = 0
    history: list[str] = field(default_factory=list)
    event_version: int = 0
    stop_reason: StopReason = StopReason.NONE
    stop_detail: str = ""
    problems: list[str] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)  # worth knowing, not blocking (e.g. ignored compose keys)
    replaced_commit: str = ""
    last_command: str = ""  # the answer to the latest /review-app command, shown under the note
    # The task this launch must stop once it runs. Carried from claim to claim, so a launch
    # superseded before it could stop its predecessor does not leave that task running.
    replaced_task_arn: str = ""
    replaced_task_definition_arn: str = ""
    # The newest MR event applied (its updated_at): an older one arriving late changes nothing.
    mr_updated_at: int = 0
    # When a stop was asked (epoch seconds): a task still running well after it is stopped again.
    stopping_since: int = 0
    # The deadline's schedule could not be made: the reconciler makes it (and says so until then).
    deadline_unscheduled: bool = False
    # A start that failed for a reason that passes (no Fargate capacity, throttling): how many in
    # a row, and not before when the next try is (the MR waits in the queue meanwhile).
    start_attempts: int = 0
    retry_at: int = 0
    # A delivery that could not be served when it came (GitLab or AWS failing): what was asked,
    # as JSON (lifecycle.kept), and when; the reconciler carries it out once they answer.
    pending_ask: str = ""
    pending_at: int = 0
    # Who is creating the MR's note: a writer that finds no note claims this first, so two
    # functions publishing at once never make two notes.
    note_claimed_at: int = 0
    # When DynamoDB may delete a finished record (epoch seconds); 0 while the app may still run.
    expires_at: int = 0
    # What has been published to GitLab, so each step makes only the calls that change something.
    note_id: int = 0
    note_digest: str = ""
    environment_id: int = 0
    environment_state: str = ""
    deployment_id: int = 0
    deployment_status: str = ""
    commit_status: str = ""

    @property
    def key(self) -> str:
        return f"{self.project_id}/{self.mr_iid}"

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    @property
    def queued(self) -> bool:
        return self.status == Status.QUEUED

    @property
    def mr(self) -> MergeRequestRef:
        return MergeRequestRef(
            self.project_id, self.mr_iid, self.source_project_id, self.source_branch, self.project_path
        )

    def to_item(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> Record:
        known = {f.name for f in fields(cls)}
        data = {k: v for k, v in item.items() if k in known}
        for f in fields(cls):
            if f.name in data and f.type in ("int", int):
                data[f.name] = int(data[f.name])
            elif f.name in data and f.type in ("bool", bool):
                data[f.name] = bool(data[f.name])
        data["status"] = Status(data.get("status", ""))
        data["stop_reason"] = StopReason(data.get("stop_reason", ""))
        for name in ("problems", "notices", "history"):
            if name in data:
                data[name] = list(data[name])
        return cls(**data)

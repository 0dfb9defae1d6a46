"""`make smoke`: proof that a deployed install works, by playing one merge request's life through
the real GitLab and AWS, after `make doctor`'s checks.

    make smoke SMOKE_PROJECT=sandbox/review-apps-smoke   # a project the bot may write to
    make smoke SMOKE_NAMESPACE=sandbox                   # or: create a throwaway one there, then delete it
    make smoke STACK=my-review-apps SMOKE_IMAGE=public.ecr.aws/nginx/nginx:stable-alpine

Phases, each printed with its time: doctor (the install's and the project's checks); a branch
with a spec running SMOKE_IMAGE (a small public web server the install must allow, e.g. under
SharedImagePrefixes); a merge request, until its note says live (IP mode: ECS says RUNNING and
the address is on the note; address mode: the target is healthy and https://<host>/ answers
with a redirect to the sign-in, or 200 when ReviewAppAccess is public); a push, until the new
commit is live and the old task stopped; `/review-app stop`; the merge request closed, until
nothing of it is left (tasks, rules, target groups, schedules, task definitions, records). A
failure stops the run with what was seen and the fix. Whatever happens, it closes its merge
request, deletes its branch, and deletes the project it created.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import requests

from tools.install import Clients, Install, InstallError, error_code, stack_name

DEFAULT_IMAGE = "public.ecr.aws/nginx/nginx:stable-alpine"
SPEC = "compose: .review-apps-smoke/docker-compose.yml\ntrigger: merge_request\nttl: 15m\nsleep_after: 0\n"
COMPOSE = """\
services:
  web:
    image: {image}
    ports:
      - "80:80"
    mem_limit: 512m
    environment:
      SMOKE_RUN: "{run}"
"""
_HEADING = re.compile(r"^### .*Review app: (?P<status>[^\n]+)$", re.MULTILINE)
NOTE_MARKER = "<!-- review-app:note"


class SmokeFailed(Exception):
    def __init__(self, what: str, fix: str, seen: str = "") -> None:
        super().__init__(what)
        self.what, self.fix, self.seen = what, fix, seen


@dataclass
class Made:
    """What the run created in GitLab, for the cleanup; and the AWS resources it saw the install make."""

    project: Any = None
    created_project: bool = False
    branch: str = ""
    mr: Any = None
    tasks: set[str] = field(default_factory=set)
    task_definitions: set[str] = field(default_factory=set)
    target_groups: set[str] = field(default_factory=set)
    rules: set[str] = field(default_factory=set)


class Smoke:
    def __init__(
        self,
        install: Install,
        http: requests.Session,
        *,
        project: str = "",
        namespace: str = "",
        image: str = DEFAULT_IMAGE,
        timeout: float = 600.0,
        poll: float = 3.0,
        say: Callable[[str], None] = print,
    ) -> None:
        if bool(project) == bool(namespace):
            raise ValueError("give SMOKE_PROJECT=group/name or SMOKE_NAMESPACE=group (one of them)")
        self.install, self.http = install, http
        self.project_path, self.namespace, self.image = project.strip("/"), namespace.strip("/"), image
        self.timeout, self.poll, self.say = timeout, poll, say
        self.run_id = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
        self.made = Made()
        self.gl: Any = None

    # ------------------------------------------------------------------ the run

    def run(self) -> bool:
        started = time.monotonic()
        self.say(f"make smoke: stack {self.install.stack}, {'address' if self.install.address_mode else 'IP'} mode")
        try:
            self._phase("doctor", self._doctor)
            self._phase("project", self._project)
            self._phase("branch", self._branch)
            self._phase("open", self._open)
            self._phase("push", self._push)
            self._phase("stop", self._stop)
            self._phase("close", self._close)
        except SmokeFailed as failed:
            self.say(f"FAIL {failed.what}")
            for line in failed.seen.splitlines():
                self.say(f"       seen: {line}")
            self.say(f"       fix: {failed.fix}")
            self._phase("cleanup", self._cleanup, quiet_failure=True)
            self.say(f"make smoke: FAILED after {time.monotonic() - started:.1f} s")
            return False
        self._phase("cleanup", self._cleanup, quiet_failure=True)
        self.say(f"make smoke: passed in {time.monotonic() - started:.1f} s")
        return True

    def _phase(self, name: str, step: Callable[[], str], quiet_failure: bool = False) -> None:
        began = time.monotonic()
        try:
            detail = step()
        except SmokeFailed:
            raise
        except Exception as exc:
            if quiet_failure:
                self.say(f"  {name:<8} {time.monotonic() - began:6.1f} s  incomplete: {exc!r}")
                return
            raise SmokeFailed(f"{name}: {type(exc).__name__}: {exc}", "see the error above; run make doctor") from exc
        self.say(f"  {name:<8} {time.monotonic() - began:6.1f} s  {detail}")

    def _doctor(self) -> str:
        from tools import doctor
        from tools.onboard import Onboarding

        checks = doctor.run(self.install.stack, self.install.aws, self.http)
        if self.project_path and all(c.ok for c in checks):
            checks += Onboarding(self.install, self.project_path, change=False).for_smoke()
        failed = [c for c in checks if not c.ok]
        if failed:
            raise SmokeFailed(
                f"doctor: {len(failed)} of {len(checks)} checks failed: " + "; ".join(c.what for c in failed),
                "; ".join(dict.fromkeys(c.fix for c in failed if c.fix)),
            )
        return f"{len(checks)} checks passed"

    def _project(self) -> str:
        from tools.onboard import Onboarding

        self.gl = self.install.gitlab()
        if self.project_path:
            self.made.project = self.gl.projects.get(self.project_path)
            return f"{self.project_path} (id {self.made.project.id})"
        namespace = self.gl.namespaces.get(self.namespace)
        self.made.project = self.gl.projects.create(
            {"name": f"review-apps-smoke-{self.run_id}", "namespace_id": namespace.id, "visibility": "private"}
        )
        self.made.created_project = True
        path = self.made.project.path_with_namespace
        failed = [c for c in Onboarding(self.install, path, change=True).for_smoke() if not c.ok]
        if failed:
            raise SmokeFailed(f"onboarding {path}: {failed[0].what}", failed[0].fix)
        return f"created {path} (id {self.made.project.id}) with the install's webhook"

    def _branch(self) -> str:
        project = self.made.project
        self.made.branch = f"review-apps-smoke/{self.run_id}"
        commit = project.commits.create(
            {
                "branch": self.made.branch,
                "start_branch": project.default_branch,
                "commit_message": "review apps smoke test: a spec and a compose file",
                "actions": [
                    {"action": "create", "file_path": ".gitlab/review-app.yml", "content": SPEC},
                    {
                        "action": "create",
                        "file_path": ".review-apps-smoke/docker-compose.yml",
                        "content": COMPOSE.format(image=self.image, run=1),
                    },
                ],
            }
        )
        return f"{self.made.branch} at {commit.id[:8]}, running {self.image}"

    def _open(self) -> str:
        project = self.made.project
        self.made.mr = project.mergerequests.create(
            {
                "source_branch": self.made.branch,
                "target_branch": project.default_branch,
                "title": "Review apps smoke test (make smoke closes it)",
            }
        )
        record = self._live(self.made.mr.sha)
        return f"!{self.made.mr.iid} live at {record.url} ({self._where(record)})"

    def _push(self) -> str:
        before = self._record()
        commit = self.made.project.commits.create(
            {
                "branch": self.made.branch,
                "commit_message": "review apps smoke test: a push replaces the app",
                "actions": [
                    {
                        "action": "update",
                        "file_path": ".review-apps-smoke/docker-compose.yml",
                        "content": COMPOSE.format(image=self.image, run=2),
                    }
                ],
            }
        )
        record = self._live(commit.id)
        self._until_stopped(before.task_arn, "the replaced task", "the install stops it itself; see its logs")
        return f"{commit.id[:8]} live ({self._where(record)}); the old task stopped"

    def _stop(self) -> str:
        record = self._record()
        self.made.mr.notes.create({"body": "/review-app stop"})
        note = self._until(
            "the note to say the app stopped",
            self._stopped_note,
            "comment commands need the project's webhook to send comment events (make onboard)",
        )
        self._until_stopped(record.task_arn, "the app's task", "see the webhook function's logs")
        return f"the note says: {self._status(note)}"

    def _stopped_note(self) -> str | None:
        note = self._note()
        return note if note and self._status(note).startswith("stopped") else None

    def _until_stopped(self, task_arn: str, which: str, fix: str) -> None:
        self._until(f"{which} to stop", lambda: self._task_status(task_arn) in ("STOPPED", "GONE"), fix)

    def _close(self) -> str:
        mr = self.made.mr
        mr.state_event = "close"
        mr.save()
        left = self._until(
            "nothing of the merge request to be left",
            lambda: "nothing" if not self._leftovers() else None,
            "the reconciler retires what a closed MR left within a few minutes; see its logs",
            show=self._leftovers,
        )
        record = self._record()
        kept = (
            f"; its record stays as history until DynamoDB's TTL deletes it "
            f"({datetime.fromtimestamp(record.expires_at, UTC):%Y-%m-%d})"
            if record
            else ""
        )
        return f"!{mr.iid} closed; {left} left (tasks, rules, target groups, schedules, task definitions){kept}"

    def _cleanup(self) -> str:
        done = []
        project, mr = self.made.project, self.made.mr
        if mr is not None:
            fresh = project.mergerequests.get(mr.iid)
            if fresh.state == "opened":
                fresh.state_event = "close"
                fresh.save()
                done.append(f"closed !{mr.iid}")
        if self.made.branch and not self.made.created_project:
            project.branches.delete(self.made.branch)
            done.append(f"deleted {self.made.branch}")
        if self.made.created_project:
            project.delete()
            done.append(f"deleted {project.path_with_namespace}")
        return ", ".join(done) or "nothing to clean up"

    # ------------------------------------------------------------------ what is seen

    def _live(self, sha: str) -> Any:
        def live() -> Any:
            note = self._note()
            if note is None or sha[:8] not in note:
                return None
            status = self._status(note)
            if status.startswith(("could not start", "not deployed", "refused", "crashed", "failed", "stopped")):
                raise SmokeFailed(f"the merge request's note says: {status}", _fix_for(note), seen=_problems(note))
            if not status.startswith("live"):
                return None
            record = self._record()
            return record if record and record.commit_sha == sha and record.status == "live" else None

        record = self._until(
            f"the note to say {sha[:8]} is live",
            live,
            "GitLab did not reach the webhook, or it refused the delivery: the project's Settings > Webhooks > "
            f"Recent events, make doctor PROJECT={self._path()}, and sam logs -n WebhookFunction --stack-name "
            f"{self.install.stack}",
        )
        self.made.tasks.add(record.task_arn)
        self.made.task_definitions.add(record.task_definition_arn)
        if self.install.address_mode:
            self._address_answers(record)
        else:
            status = self._task_status(record.task_arn)
            if status != "RUNNING":
                raise SmokeFailed(f"ECS says the task is {status}", "see the task's stopped reason in the ECS console")
            if record.url not in (self._note() or ""):
                raise SmokeFailed("the note does not show the app's address", "see TaskEventsFunction's logs")
        return record

    def _address_answers(self, record: Any) -> None:
        group, rule = record.target_group_arn, record.rule_arn
        self.made.target_groups.add(group)
        self.made.rules.add(rule)
        health = self.install.aws.elbv2.describe_target_health(TargetGroupArn=group)["TargetHealthDescriptions"]
        if not any(h["TargetHealth"]["State"] == "healthy" for h in health):
            raise SmokeFailed(
                "the app's target is not healthy",
                "the app must answer its health check path (spec health_check) with 200-399",
                seen=str([h["TargetHealth"] for h in health]),
            )
        url = record.url.rstrip("/") + "/"
        try:
            answer = self.http.get(url, allow_redirects=False, timeout=15)
        except requests.RequestException as exc:
            raise SmokeFailed(
                f"{url} did not answer ({type(exc).__name__})",
                f"*.{self.install.params.get('ReviewDomain')} must resolve to the ALB (a DNS alias record)",
            ) from None
        if self.install.sign_in:
            location = answer.headers.get("Location", "")
            if answer.status_code != 302 or "/authorize" not in location:
                raise SmokeFailed(
                    f"{url} answered {answer.status_code} {location[:120]}, not a redirect to the sign-in",
                    "the app's rule must authenticate first: redeploy the stack (sam deploy) and make doctor",
                )
        elif answer.status_code != 200:
            raise SmokeFailed(f"{url} answered {answer.status_code}, not 200", "see the app's logs")

    def _where(self, record: Any) -> str:
        if not self.install.address_mode:
            return "ECS says RUNNING; the address is on the note"
        return "target healthy; " + ("/ redirects to the sign-in" if self.install.sign_in else "/ answers 200")

    def _leftovers(self) -> list[str]:
        aws, found = self.install.aws, []
        for arn in self.made.tasks:
            if self._task_status(arn) not in ("STOPPED", "GONE"):
                found.append(f"task {arn}")
        families = {arn.rsplit("/", 1)[-1].rsplit(":", 1)[0] for arn in self.made.task_definitions}
        for family in families:
            active = aws.ecs.list_task_definitions(familyPrefix=family, status="ACTIVE")["taskDefinitionArns"]
            found += [f"task definition {arn}" for arn in active if arn.rsplit("/", 1)[-1].rsplit(":", 1)[0] == family]
        for group in self.made.target_groups - {""}:
            if _exists(aws.elbv2.describe_target_groups, TargetGroupArns=[group]):
                found.append(f"target group {group}")
        for rule in self.made.rules - {""}:
            if _exists(aws.elbv2.describe_rules, RuleArns=[rule]):
                found.append(f"listener rule {rule}")
        project, iid = self.made.project.id, self.made.mr.iid
        if _exists(aws.scheduler.get_schedule, Name=f"mr-{project}-{iid}", GroupName=self.install.stack):
            found.append(f"schedule mr-{project}-{iid}")
        record = self._record()
        if record and (record.status != "stopped" or not record.expires_at):
            found.append(f"the record of !{iid} ({record.status}, no expiry)")
        return found

    def _note(self) -> str | None:
        for note in self.made.mr.notes.list(get_all=True, sort="asc"):
            if note.body.startswith(NOTE_MARKER):
                return str(note.body)
        return None

    @staticmethod
    def _status(note: str) -> str:
        match = _HEADING.search(note)
        return match["status"].strip() if match else ""

    def _record(self) -> Any:
        """The MR's record as the install keeps it (None once there is none)."""
        return self.install.records().get(self.made.project.id, self.made.mr.iid)

    def _task_status(self, arn: str) -> str:
        cluster = self.install.params.get("ClusterName", "")
        tasks = self.install.aws.ecs.describe_tasks(cluster=cluster, tasks=[arn])["tasks"]
        return str(tasks[0]["lastStatus"]) if tasks else "GONE"

    def _path(self) -> str:
        return self.project_path or getattr(self.made.project, "path_with_namespace", self.namespace)

    def _until(self, what: str, found: Callable[[], Any], fix: str, show: Callable[[], Any] | None = None) -> Any:
        deadline = time.monotonic() + self.timeout
        while True:
            value = found()
            if value:
                return value
            if time.monotonic() >= deadline:
                seen = show() if show else (self._note() or "no review-app note on the merge request")
                raise SmokeFailed(
                    f"waited {self.timeout:.0f} s for {what}",
                    fix,
                    seen="\n".join(seen) if isinstance(seen, list) else str(seen)[:2000],
                )
            time.sleep(self.poll)


def _exists(describe: Callable[..., Any], **kwargs: Any) -> bool:
    try:
        describe(**kwargs)
    except Exception as exc:
        if "NotFound" in error_code(exc) or "ResourceNotFound" in error_code(exc):
            return False
        raise
    return True


def _problems(note: str) -> str:
    return "\n".join(line[2:] for line in note.splitlines() if line.startswith("- "))[:2000] or note[:2000]


def _fix_for(note: str) -> str:
    if "not allowed" in note or "may not use" in note or "SharedImagePrefixes" in note:
        return (
            "SMOKE_IMAGE must be an image the install allows: add its registry/repository to SharedImagePrefixes "
            "(sam deploy --parameter-overrides ...), or SMOKE_IMAGE=<an image under it>"
        )
    return "what the note says above; make doctor"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="smoke", description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", default="", help="the stack name (default: samconfig.toml's)")
    parser.add_argument("--project", default=os.environ.get("SMOKE_PROJECT", ""))
    parser.add_argument("--namespace", default=os.environ.get("SMOKE_NAMESPACE", ""))
    parser.add_argument("--image", default=os.environ.get("SMOKE_IMAGE") or DEFAULT_IMAGE)
    parser.add_argument("--timeout", type=float, default=float(os.environ.get("SMOKE_TIMEOUT") or 600))
    args = parser.parse_args(argv)
    if bool(args.project) == bool(args.namespace):
        parser.error("give SMOKE_PROJECT=group/name (a sandbox the bot may write to) or SMOKE_NAMESPACE=group")
    import boto3
    from botocore.exceptions import BotoCoreError

    stack = stack_name(args.stack)
    try:
        install = Install.read(stack, Clients(boto3.client))
        smoke = Smoke(
            install,
            requests.Session(),
            project=args.project,
            namespace=args.namespace,
            image=args.image,
            timeout=args.timeout,
        )
        return 0 if smoke.run() else 1
    except InstallError as exc:
        print(f"make smoke: FAIL {exc.what}\n       fix: {exc.fix}")
        return 1
    except BotoCoreError as exc:
        print(f"smoke: this needs AWS credentials and a Region for the install's account: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())

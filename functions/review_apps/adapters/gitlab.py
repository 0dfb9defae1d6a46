"""GitLab through python-gitlab: read the spec, look at the MR, and publish a record's view.

`publish` compares what the record says was already published with what it should show, and
only calls GitLab for what differs. That makes it safe to call again after any failure.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

import gitlab
import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from review_apps.app_env import environment_name
from review_apps.lifecycle.access import Member
from review_apps.messages import (
    COMMIT_STATUS_NAME,
    commit_status_marker,
    digest,
    environment_wanted,
    gitlab_view,
    note_marker,
    render_note,
)
from review_apps.model.record import MergeRequestRef, Record
from review_apps.spec import SPEC_PATH
from review_apps.untrusted import MAX_FILE_BYTES, FileTooLarge


class _Budgeted(requests.Session):
    """A session whose every request ends before the invocation's deadline: each one gets what
    is left (shared with its retry), and none starts without some time left. `deadline()`:
    time.monotonic() by which GitLab calls must be over, or None for no budget."""

    def __init__(self, deadline: Callable[[], float | None], attempts: int) -> None:
        super().__init__()
        self._deadline, self._attempts = deadline, attempts
        # Set by the first answer that says GitLab is unwell (no connection, a timeout, 429 or
        # 5xx after the retries): the invocation's further calls fail at once instead of each
        # waiting the same way. Reset per invocation (GitLab.reset).
        self.unwell = ""

    def request(self, method: str, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        if self.unwell:
            raise GitLabUnwell(f"GitLab failed earlier in this invocation ({self.unwell}); {method!r} not sent")
        end = self._deadline()
        if end is not None:
            left = end - time.monotonic()
            if left < MIN_CALL_SECONDS:
                raise OutOfTime(f"no time left in this invocation for GitLab ({method!r} not sent)")
            share = left / self._attempts
            timeout = kwargs.get("timeout")
            kwargs["timeout"] = min(timeout, share) if isinstance(timeout, int | float) else share
        try:
            answer = super().request(method, url, *args, **kwargs)
        except OutOfTime:
            raise
        except (requests.ConnectionError, requests.Timeout) as exc:
            self.unwell = exc.__class__.__name__
            raise
        if answer.status_code == 429 or answer.status_code >= 500:
            self.unwell = f"HTTP {answer.status_code}"
        return answer


def _session(retries: int, deadline: Callable[[], float | None]) -> _Budgeted:
    """Bounded retries with short backoff on transient errors. python-gitlab's own loop (up to
    10 tries, growing sleeps) is left off: it would blow through GitLab's 10-second budget.
    A POST that failed with a 5xx may have been applied, so only idempotent methods retry on
    status; a lost note creation is found again by its marker on the next publish."""
    retry = Retry(
        total=retries,
        connect=retries,
        read=min(retries, 1),  # a GitLab that hangs costs two timeouts, not four
        status=retries,
        backoff_factor=0.2,
        status_forcelist=(500, 502, 503, 504),
        allowed_methods=frozenset({"GET", "PUT", "DELETE", "HEAD"}),
        raise_on_status=False,
        respect_retry_after_header=False,
    )
    session = _Budgeted(deadline, retries + 1)
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


MIN_CALL_SECONDS = 0.3  # less than this left: the call is not worth starting


class GitLabUnwell(requests.ConnectionError):
    """GitLab already failed in this invocation: the call was not sent (see _Budgeted.unwell)."""


class OutOfTime(requests.Timeout):
    """The invocation has no time left for another GitLab call (a slow GitLab): the caller
    answers as for any GitLab timeout, and a resend or the next run does the rest."""


class _NoSleepOnRateLimit(gitlab.Gitlab):
    """python-gitlab, told never to sleep on a 429 (its default waits Retry-After, up to 10 times,
    which would hold a function past its timeout): a 429 raises at once, as GitlabHttpError with
    response_code 429, and the caller answers a retryable error or tries on its next run."""

    def http_request(self, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs["obey_rate_limit"] = False
        kwargs["max_retries"] = 1
        return super().http_request(*args, **kwargs)


def rate_limited(exc: BaseException) -> bool:
    return isinstance(exc, gitlab.exceptions.GitlabError) and exc.response_code == 429


class NoAccess(Exception):
    """The bot may not read something the spec needs (e.g. a fork it is not a member of)."""


@dataclasses.dataclass(frozen=True)
class MergeRequestNow:
    """The MR as GitLab sees it now: what a webhook body says about it is only a hint."""

    ref: MergeRequestRef
    state: str
    head_sha: str
    labels: tuple[str, ...]
    draft: bool


class GitLab:
    def __init__(
        self,
        url: str,
        token: str,
        timeout: float = 4.0,
        retries: int = 2,
        deadline: Callable[[], float | None] = lambda: None,
    ) -> None:
        self._session = _session(retries, deadline)
        self._gl = _NoSleepOnRateLimit(url, private_token=token, timeout=timeout, session=self._session)

    def reset(self) -> None:
        """A new invocation: GitLab gets a fresh chance."""
        self._session.unwell = ""

    @property
    def unwell(self) -> str:
        """Why GitLab is left alone for the rest of this invocation ("" while it answers)."""
        return self._session.unwell

    def _project(self, project_id: int) -> Any:
        return self._gl.projects.get(project_id, lazy=True)

    # ------------------------------------------------------------------ reading

    def read_spec(self, project_id: int, sha: str) -> str | None:
        """The spec at `sha` in the MR's source project, or None when the file is absent."""
        return self.read_file(project_id, SPEC_PATH, sha)

    def read_file(self, project_id: int, path: str, sha: str) -> str | None:
        """A file of the repository at `sha`, or None when it does not exist there."""
        try:
            chunks = self._project(project_id).files.raw(
                file_path=path, ref=sha, streamed=True, iterator=True, chunk_size=16384
            )
            raw = b""
            # Read no more than the limit (plus one byte to know it was passed), whatever the file's size.
            for chunk in chunks:
                raw += chunk
                if len(raw) > MAX_FILE_BYTES:
                    raise FileTooLarge(path, len(raw))
        except gitlab.exceptions.GitlabGetError as exc:
            if exc.response_code == 404:
                return None
            if exc.response_code == 403:
                raise NoAccess(f"the review-app bot may not read project {project_id}") from None
            raise
        return raw.decode("utf-8", errors="replace")

    def merge_request(self, project_id: int, mr_iid: int) -> MergeRequestNow | None:
        """The MR now, its project's path included; None if GitLab knows no such MR."""
        try:
            mr = self._project(project_id).mergerequests.get(mr_iid)
        except gitlab.exceptions.GitlabGetError as exc:
            if exc.response_code == 404:
                return None
            raise
        full = (getattr(mr, "references", None) or {}).get("full") or ""
        path = full.rsplit("!", 1)[0] if "!" in full else self._gl.projects.get(project_id).path_with_namespace
        ref = MergeRequestRef(
            project_id=project_id,
            iid=mr_iid,
            source_project_id=int(mr.source_project_id),
            source_branch=str(mr.source_branch),
            project_path=path,
        )
        labels = tuple(getattr(mr, "labels", []) or [])
        return MergeRequestNow(ref, mr.state, mr.sha, labels, bool(getattr(mr, "draft", False)))

    def member_access(self, project_id: int, user_id: int) -> int | None:
        """The user's access level in the project (inherited included); None for non-members."""
        try:
            return int(self._project(project_id).members_all.get(user_id).access_level)
        except gitlab.exceptions.GitlabGetError as exc:
            if exc.response_code == 404:
                return None
            raise

    def visibility(self, project_id: int) -> str:
        """`private`, `internal` or `public`: who can read the project's merge requests."""
        return str(self._gl.projects.get(project_id).visibility)

    def member(self, project_id: int, user_id: int) -> Member | None:
        """The user's standing in the project (inherited membership included); None for non-members."""
        try:
            found = self._project(project_id).members_all.get(user_id)
        except gitlab.exceptions.GitlabGetError as exc:
            if exc.response_code == 404:
                return None
            raise
        return Member(int(found.access_level), str(getattr(found, "state", "active") or "active"))

    # ------------------------------------------------------------------ publishing

    def publish(self, record: Record, fresh: bool = False) -> Record:
        """Bring the MR's note, environment, deployment and commit status in line with `record`.
        `fresh`: the MR is brand new, so it has no review-app note to look for."""
        out = dataclasses.replace(record)
        project = self._project(record.project_id)

        body = render_note(record)
        if out.note_digest != digest(body):
            out.note_id = self._upsert_note(project, record, body, fresh)
            out.note_digest = digest(body)

        view = gitlab_view(record)
        env_name = environment_name(record.source_branch)
        wanted = environment_wanted(view)
        if wanted.startswith("available:") and (out.environment_state != wanted or not out.environment_id):
            out.environment_id = self._ensure_environment(project, env_name, view.environment_url, out.environment_id)
            out.environment_state = wanted

        if view.deployment_status and out.deployment_status != view.deployment_status:
            if out.deployment_id:
                deployment = project.deployments.get(out.deployment_id, lazy=True)
                deployment.status = view.deployment_status
                deployment.save()
            else:
                created = project.deployments.create(
                    {
                        "environment": env_name,
                        "sha": record.commit_sha,
                        "ref": record.source_branch,
                        "tag": False,
                        "status": view.deployment_status,
                    }
                )
                out.deployment_id = created.id
            out.deployment_status = view.deployment_status

        status = view.commit_status
        if status is not None and out.commit_status != commit_status_marker(record, status):
            payload = {
                "state": status.state,
                "name": COMMIT_STATUS_NAME,
                "description": status.description[:255],
                "ref": record.source_branch,
            }
            if status.target_url:
                payload["target_url"] = status.target_url
            source = self._project(record.source_project_id or record.project_id)
            try:
                source.commits.get(record.commit_sha, lazy=True).statuses.create(payload)
            except gitlab.exceptions.GitlabCreateError as exc:
                # Another function published the same state first: GitLab refuses a move to the
                # state the status is already in, and there is nothing left to do.
                if not (exc.response_code == 400 and f"from :{status.state}" in str(exc.error_message)):
                    raise
            out.commit_status = commit_status_marker(record, status)

        if wanted == "stopped" and out.environment_id and out.environment_state != "stopped":
            project.environments.get(out.environment_id, lazy=True).stop()
            out.environment_state = "stopped"
        return out

    def _upsert_note(self, project: Any, record: Record, body: str, fresh: bool = False) -> int:
        mr = project.mergerequests.get(record.mr_iid, lazy=True)
        if record.note_id:
            try:
                note = mr.notes.get(record.note_id, lazy=True)
                note.body = body
                note.save()
                return record.note_id
            except gitlab.exceptions.GitlabUpdateError as exc:
                if exc.response_code != 404:
                    raise
        if fresh:
            return int(mr.notes.create({"body": body}).id)
        # The record may be new or lost while the note survived: find it by its marker.
        marker = note_marker(record.project_id, record.mr_iid)
        for note in mr.notes.list(iterator=True, sort="asc"):
            if note.body.startswith(marker):
                existing = mr.notes.get(note.id, lazy=True)
                existing.body = body
                existing.save()
                return note.id
        return mr.notes.create({"body": body}).id

    def _ensure_environment(self, project: Any, name: str, url: str, known_id: int) -> int:
        """The environment's id, with `url` as its external URL. Tries the cheap call first:
        update by id when we know it, create when we don't, look it up only if it exists."""
        if known_id:
            if url:
                env = project.environments.get(known_id, lazy=True)
                env.external_url = url
                env.save()
            return known_id
        payload = {"name": name, "tier": "development"}
        if url:
            payload["external_url"] = url
        try:
            return project.environments.create(payload).id
        except gitlab.exceptions.GitlabCreateError as exc:
            if exc.response_code != 400:
                raise
            refused = exc  # most likely "name has already been taken": look it up
        found = [env for env in project.environments.list(name=name) if env.name == name]
        if not found:
            raise refused
        env = found[0]
        if url and getattr(env, "external_url", None) != url:
            lazy = project.environments.get(env.id, lazy=True)
            lazy.external_url = url
            lazy.save()
        return env.id

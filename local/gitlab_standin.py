"""A small GitLab stand-in: the REST endpoints review apps use, over real HTTP on 127.0.0.1.

Faithful to GitLab's documented API where we use it (paths, status codes, JSON shapes,
pagination headers) and strict about input: missing or invalid fields get GitLab's 400s, an
unknown commit gets a 404, a wrong token a 401. It is driven by the real python-gitlab client
in tests and in the demo. State is in memory and readable directly by the test that owns it.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from local import gitlab_hooks

BOT_USER = {"id": 99, "username": "review-apps-bot", "name": "Review Apps", "state": "active"}
ENV_TIERS = ("production", "staging", "testing", "development", "other")
DEPLOYMENT_STATUSES = ("running", "success", "failed", "canceled", "blocked")
COMMIT_STATES = ("pending", "running", "success", "failed", "canceled", "skipped")
# GitLab's commit status state machine: which event a requested state fires, and from where.
_STATUS_EVENTS = {
    "pending": ("enqueue", {"created", "skipped"}),
    "running": ("run", {"created", "pending"}),
    "success": ("success", {"created", "pending", "running"}),
    "failed": ("drop", {"created", "pending", "running"}),
    "canceled": ("cancel", {"created", "pending", "running"}),
    "skipped": ("skip", {"created"}),
}


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class HttpError(Exception):
    def __init__(self, status: int, body: dict) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


def _not_found(what: str) -> HttpError:
    return HttpError(404, {"message": f"404 {what} Not Found"})


def _bad(field: str, message: str) -> HttpError:
    return HttpError(400, {"message": {field: [message]}})


def _missing(field: str) -> HttpError:
    return HttpError(400, {"error": f"{field} is missing"})


@dataclass
class Project:
    id: int
    path_with_namespace: str
    default_branch: str = "main"
    commits: dict[str, dict[str, str]] = field(default_factory=dict)  # sha -> {path: content}
    members: dict[int, int] = field(default_factory=dict)  # user id -> access level
    visibility: str = "private"  # private, internal or public
    branches: dict[str, str] = field(default_factory=dict)  # name -> head commit sha
    hooks: list[dict[str, Any]] = field(default_factory=list)  # project webhooks, token included


class GitLabState:
    """Everything the stand-in knows. Tests set it up with the helpers and read it directly."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.lock = threading.RLock()
        self.projects: dict[int, Project] = {}
        self.merge_requests: dict[tuple[int, int], dict[str, Any]] = {}
        self.notes: dict[tuple[int, int], list[dict[str, Any]]] = {}
        self.environments: dict[int, list[dict[str, Any]]] = {}
        self.deployments: dict[int, list[dict[str, Any]]] = {}
        self.statuses: dict[tuple[int, str], list[dict[str, Any]]] = {}
        self.requests: list[tuple[str, str]] = []  # (method, path template) of every API call
        self._ids = 1000
        # Faults to inject: each entry answers one matching request with (status, body).
        self.faults: list[tuple[Callable[[str, str], bool], int, dict]] = []
        # Slow answers: each entry delays one matching request by that many seconds.
        self.delays: list[tuple[Callable[[str, str], bool], float]] = []
        # Something else happening while one matching request is served (before it is answered).
        self.meanwhile: list[tuple[Callable[[str, str], bool], Callable[[], None]]] = []
        # GitLab as an OAuth 2.0 / OpenID Connect provider (local/gitlab_oauth.py).
        self.users: dict[int, dict[str, Any]] = {}
        self.oauth_apps: dict[str, dict[str, Any]] = {}
        self.oauth_codes: dict[str, dict[str, Any]] = {}
        self.oauth_tokens: dict[str, int] = {}
        self.browser_sessions: dict[str, int] = {}
        self.token_scopes: tuple[str, ...] = ("api",)  # the bot token's, as /personal_access_tokens/self says
        self.tokens: dict[str, int] = {token: BOT_USER["id"]}  # personal access tokens -> their user
        self.caller = BOT_USER["id"]  # whose token the request being served carries
        self.namespaces: dict[str, int] = {}  # group paths -> namespace ids
        # Webhook deliveries (local/gitlab_hooks.py): how a delivery is POSTed, and what each got.
        self.hook_transport: Any = None
        self.hook_deliveries: list[dict[str, Any]] = []

    def next_id(self) -> int:
        self._ids += 1
        return self._ids

    # ------------------------------------------------------------------ set-up helpers

    def add_project(self, project_id: int, path: str) -> Project:
        """A project with one empty commit on its default branch, in its group's namespace."""
        project = Project(project_id, path)
        root = hashlib.sha1(f"root of {path}".encode()).hexdigest()
        project.commits[root], project.branches[project.default_branch] = {}, root
        self.projects[project_id] = project
        self.namespaces.setdefault(path.rsplit("/", 1)[0], self.next_id())
        return project

    def add_user(self, user_id: int, username: str, name: str, password: str, state: str = "active") -> None:
        self.users[user_id] = {"id": user_id, "username": username, "name": name, "password": password, "state": state}

    def add_oauth_app(self, application_id: str, secret: str, redirect_uri: str, scopes: str = "openid") -> None:
        """An instance-wide application an admin made "trusted": no consent screen."""
        self.oauth_apps[application_id] = {"secret": secret, "redirect_uri": redirect_uri, "scopes": scopes.split()}

    def add_commit(self, project_id: int, sha: str, files: dict[str, str]) -> None:
        self.projects[project_id].commits[sha] = dict(files)

    def open_merge_request(
        self, project_id: int, iid: int, *, sha: str, source_branch: str, source_project_id: int | None = None
    ) -> dict[str, Any]:
        mr = {
            "id": self.next_id(),
            "iid": iid,
            "project_id": project_id,
            "title": f"Merge request {iid}",
            "state": "opened",
            "draft": False,
            "sha": sha,
            "source_branch": source_branch,
            "target_branch": self.projects[project_id].default_branch,
            "source_project_id": source_project_id or project_id,
            "target_project_id": project_id,
            "labels": [],  # titles, as GitLab's MR API returns them
            "references": {
                "short": f"!{iid}",
                "relative": f"!{iid}",
                "full": f"{self.projects[project_id].path_with_namespace}!{iid}",
            },
            "web_url": f"http://gitlab.local/{self.projects[project_id].path_with_namespace}/-/merge_requests/{iid}",
        }
        self.merge_requests[(project_id, iid)] = mr
        self.notes.setdefault((project_id, iid), [])
        return mr

    def fail_next(self, count: int, status: int = 500, method: str = "", path_contains: str = "") -> None:
        for _ in range(count):
            self.faults.append(
                (
                    lambda m, p: (not method or m == method) and path_contains in p,
                    status,
                    {"message": f"{status} injected fault"},
                )
            )

    def slow_next(self, count: int, seconds: float, path_contains: str = "") -> None:
        for _ in range(count):
            self.delays.append((lambda m, p: path_contains in p, seconds))

    def while_serving(self, method: str, path_contains: str, action: Callable[[], None]) -> None:
        """Run `action` while the next matching request is served (as another writer would act)."""
        self.meanwhile.append((lambda m, p: m == method and path_contains in p, action))

    def _meanwhile_for(self, method: str, path: str) -> Callable[[], None] | None:
        with self.lock:
            for index, (matches, action) in enumerate(self.meanwhile):
                if matches(method, path):
                    del self.meanwhile[index]
                    return action
        return None

    def _delay_for(self, method: str, path: str) -> float:
        with self.lock:
            for index, (matches, seconds) in enumerate(self.delays):
                if matches(method, path):
                    del self.delays[index]
                    return seconds
        return 0.0

    # ------------------------------------------------------------------ lookups

    def project(self, raw_id: str) -> Project:
        key = unquote(raw_id)
        if key.isdigit() and int(key) in self.projects:
            return self.projects[int(key)]
        for project in self.projects.values():
            if project.path_with_namespace == key:
                return project
        raise _not_found("Project")

    def author(self) -> dict[str, Any]:
        """The caller as GitLab shows a note's author."""
        if self.caller == BOT_USER["id"]:
            return dict(BOT_USER)
        user = self.users[self.caller]
        return {k: user[k] for k in ("id", "username", "name", "state")}

    def access(self, project: Project) -> int:
        """The caller's access level in `project` (0: not a member)."""
        return project.members.get(self.caller, 0)

    def merge_request(self, project: Project, iid: str) -> dict[str, Any]:
        mr = self.merge_requests.get((project.id, int(iid)))
        if mr is None:
            raise _not_found("Merge Request")
        return mr

    def environment(self, project: Project, env_id: str) -> dict[str, Any]:
        for env in self.environments.get(project.id, []):
            if env["id"] == int(env_id):
                return env
        raise _not_found("Environment")


_ROUTES: list[tuple[str, re.Pattern, Callable, str]] = []


def route(method: str, template: str):
    pattern = re.compile("^/api/v4" + re.sub(r":(\w+)", r"(?P<\1>[^/]+)", template) + "$")

    def register(fn):
        _ROUTES.append((method, pattern, fn, template))
        return fn

    return register


def _require(data: dict, name: str) -> Any:
    value = data.get(name)
    if value is None or value == "":
        raise _missing(name)
    return value


def _valid_url(value: Any) -> bool:
    return isinstance(value, str) and re.match(r"^https?://[^\s/]+", value) is not None


# ---------------------------------------------------------------------- endpoints


@route("GET", "/user")
def get_user(state: GitLabState, q: dict, data: dict) -> tuple[int, Any]:
    if state.caller == BOT_USER["id"]:
        return 200, BOT_USER
    user = state.users[state.caller]
    return 200, {k: user[k] for k in ("id", "username", "name", "state")}


@route("GET", "/personal_access_tokens/self")
def get_own_token(state: GitLabState, q: dict, data: dict) -> tuple[int, Any]:
    """What GitLab says of the token that asks (15.5+): its scopes and whether it is active."""
    return 200, {
        "id": 7,
        "name": "review-apps",
        "revoked": False,
        "active": True,
        "scopes": list(state.token_scopes),
        "user_id": BOT_USER["id"],
        "expires_at": "2027-06-30",
        "created_at": "2026-06-30T09:00:00.000Z",
    }


@route("GET", "/projects/:id")
def get_project(state, q, data, id):
    project = state.project(id)
    return 200, {
        "id": project.id,
        "path_with_namespace": project.path_with_namespace,
        "default_branch": project.default_branch,
        "visibility": project.visibility,
    }


@route("GET", "/projects/:id/merge_requests/:iid")
def get_merge_request(state, q, data, id, iid):
    return 200, state.merge_request(state.project(id), iid)


@route("GET", "/projects/:id/repository/files/:file_path/raw")
def get_raw_file(state, q, data, id, file_path):
    project = state.project(id)
    ref = q.get("ref") or project.default_branch
    files = project.commits.get(project.branches.get(ref, ref))
    if files is None:
        raise _not_found("Commit")
    content = files.get(unquote(file_path))
    if content is None:
        raise _not_found("File")
    return 200, content.encode()


def _note_json(note: dict) -> dict:
    return {k: v for k, v in note.items() if not k.startswith("_")}


@route("GET", "/projects/:id/merge_requests/:iid/notes")
def list_notes(state, q, data, id, iid):
    project = state.project(id)
    state.merge_request(project, iid)
    notes = list(state.notes[(project.id, int(iid))])
    order_by = q.get("order_by", "created_at")
    if order_by not in ("created_at", "updated_at"):
        raise HttpError(400, {"error": "order_by does not have a valid value"})
    sort = q.get("sort", "desc")
    if sort not in ("asc", "desc"):
        raise HttpError(400, {"error": "sort does not have a valid value"})
    notes.sort(key=lambda n: (n[order_by], n["id"]), reverse=sort == "desc")
    return 200, [_note_json(n) for n in notes]


@route("POST", "/projects/:id/merge_requests/:iid/notes")
def create_note(state, q, data, id, iid):
    project = state.project(id)
    mr = state.merge_request(project, iid)
    body = _require(data, "body")
    if not isinstance(body, str):
        raise HttpError(400, {"error": "body is invalid"})
    if len(body) > 1_000_000:
        raise _bad("note", "is too long (maximum is 1000000 characters)")
    stamp = _now()
    note = {
        "id": state.next_id(),
        "type": None,
        "body": body,
        "author": state.author(),
        "created_at": stamp,
        "updated_at": stamp,
        "system": False,
        "noteable_id": mr["id"],
        "noteable_type": "MergeRequest",
        "noteable_iid": mr["iid"],
        "project_id": project.id,
        "resolvable": False,
        "confidential": False,
        "internal": False,
    }
    state.notes[(project.id, mr["iid"])].append(note)
    gitlab_hooks.note_created(state, project, mr, note)
    return 201, _note_json(note)


def _find_note(state, id, iid, note_id) -> dict:
    project = state.project(id)
    state.merge_request(project, iid)
    for note in state.notes[(project.id, int(iid))]:
        if note["id"] == int(note_id):
            return note
    raise _not_found("Note")


@route("GET", "/projects/:id/merge_requests/:iid/notes/:note_id")
def get_note(state, q, data, id, iid, note_id):
    return 200, _note_json(_find_note(state, id, iid, note_id))


@route("PUT", "/projects/:id/merge_requests/:iid/notes/:note_id")
def update_note(state, q, data, id, iid, note_id):
    note = _find_note(state, id, iid, note_id)
    body = _require(data, "body")
    if note["author"]["id"] != BOT_USER["id"]:
        raise HttpError(403, {"message": "403 Forbidden"})
    note["body"] = body
    note["updated_at"] = _now()
    return 200, _note_json(note)


@route("GET", "/projects/:id/environments")
def list_environments(state, q, data, id):
    project = state.project(id)
    envs = state.environments.get(project.id, [])
    if "name" in q:
        envs = [e for e in envs if e["name"] == q["name"]]
    if "search" in q:
        envs = [e for e in envs if q["search"] in e["name"]]
    if "states" in q:
        if q["states"] not in ("available", "stopping", "stopped"):
            raise HttpError(400, {"error": "states does not have a valid value"})
        envs = [e for e in envs if e["state"] == q["states"]]
    return 200, envs


def _env_slug(name: str, env_id: int) -> str:
    base = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:17].strip("-")
    return f"{base}-{env_id % 1_000_000:06x}"[:24]


@route("POST", "/projects/:id/environments")
def create_environment(state, q, data, id):
    project = state.project(id)
    name = _require(data, "name")
    envs = state.environments.setdefault(project.id, [])
    if any(e["name"] == name for e in envs):
        raise _bad("name", "has already been taken")
    if not re.match(r"^[a-zA-Z0-9 _./${}-]+$", name) or name.startswith("/") or name.endswith("/"):
        raise _bad("name", "can contain only letters, digits, '-', '_', '/', '$', '{', '}', '.', and spaces")
    external_url = data.get("external_url")
    if external_url is not None and not _valid_url(external_url):
        raise _bad("external_url", "is blocked: Only allowed schemes are http, https")
    tier = data.get("tier", "other")
    if tier not in ENV_TIERS:
        raise HttpError(400, {"error": "tier does not have a valid value"})
    env = _new_environment(state, name, external_url, tier)
    envs.append(env)
    return 201, env


def _new_environment(state: GitLabState, name: str, external_url: str | None, tier: str) -> dict:
    env_id = state.next_id()
    return {
        "id": env_id,
        "name": name,
        "slug": _env_slug(name, env_id),
        "external_url": external_url,
        "state": "available",
        "tier": tier,
        "created_at": _now(),
        "updated_at": _now(),
    }


@route("GET", "/projects/:id/environments/:env_id")
def get_environment(state, q, data, id, env_id):
    return 200, state.environment(state.project(id), env_id)


@route("PUT", "/projects/:id/environments/:env_id")
def update_environment(state, q, data, id, env_id):
    env = state.environment(state.project(id), env_id)
    if "name" in data:
        raise HttpError(400, {"error": "name is not allowed: environment names cannot be changed"})
    if "external_url" in data:
        if data["external_url"] is not None and not _valid_url(data["external_url"]):
            raise _bad("external_url", "is blocked: Only allowed schemes are http, https")
        env["external_url"] = data["external_url"]
    if "tier" in data:
        if data["tier"] not in ENV_TIERS:
            raise HttpError(400, {"error": "tier does not have a valid value"})
        env["tier"] = data["tier"]
    env["updated_at"] = _now()
    return 200, env


@route("POST", "/projects/:id/environments/:env_id/stop")
def stop_environment(state, q, data, id, env_id):
    env = state.environment(state.project(id), env_id)
    env["state"] = "stopped"
    env["updated_at"] = _now()
    return 200, env


@route("GET", "/projects/:id/deployments")
def list_deployments(state, q, data, id):
    project = state.project(id)
    deployments = state.deployments.get(project.id, [])
    if "environment" in q:
        deployments = [d for d in deployments if d["environment"]["name"] == q["environment"]]
    if "status" in q:
        deployments = [d for d in deployments if d["status"] == q["status"]]
    return 200, deployments


@route("POST", "/projects/:id/deployments")
def create_deployment(state, q, data, id):
    project = state.project(id)
    env_name = _require(data, "environment")
    sha = _require(data, "sha")
    ref = _require(data, "ref")
    if "tag" not in data or not isinstance(data["tag"], bool):
        raise _missing("tag")
    status = _require(data, "status")
    if status not in DEPLOYMENT_STATUSES:
        raise HttpError(400, {"error": "status does not have a valid value"})
    if sha not in project.commits:
        raise _bad("sha", "is not a commit of this project")
    envs = state.environments.setdefault(project.id, [])
    env = next((e for e in envs if e["name"] == env_name), None)
    if env is None:  # GitLab creates the environment on first deployment
        env = _new_environment(state, env_name, None, "other")
        envs.append(env)
    if status in ("running", "success"):
        env["state"] = "available"
    deployments = state.deployments.setdefault(project.id, [])
    deployment = {
        "id": state.next_id(),
        "iid": len(deployments) + 1,
        "ref": ref,
        "sha": sha,
        "status": status,
        "created_at": _now(),
        "updated_at": _now(),
        "user": dict(BOT_USER),
        "environment": {"id": env["id"], "name": env["name"], "external_url": env["external_url"]},
        "deployable": None,
    }
    deployments.append(deployment)
    return 201, deployment


@route("PUT", "/projects/:id/deployments/:deployment_id")
def update_deployment(state, q, data, id, deployment_id):
    project = state.project(id)
    status = _require(data, "status")
    if status not in DEPLOYMENT_STATUSES:
        raise HttpError(400, {"error": "status does not have a valid value"})
    for deployment in state.deployments.get(project.id, []):
        if deployment["id"] == int(deployment_id):
            deployment["status"] = status
            deployment["updated_at"] = _now()
            return 200, deployment
    raise _not_found("Deployment")


@route("GET", "/projects/:id/repository/commits/:sha/statuses")
def list_statuses(state, q, data, id, sha):
    project = state.project(id)
    if sha not in project.commits:
        raise _not_found("Commit")
    statuses = state.statuses.get((project.id, sha), [])
    if "name" in q:
        statuses = [s for s in statuses if s["name"] == q["name"]]
    return 200, statuses


@route("POST", "/projects/:id/statuses/:sha")
def create_status(state, q, data, id, sha):
    project = state.project(id)
    if sha not in project.commits:
        raise _not_found("Commit")
    wanted = _require(data, "state")
    if wanted not in COMMIT_STATES:
        raise HttpError(400, {"error": "state does not have a valid value"})
    for text_field in ("name", "description", "target_url", "ref"):
        if isinstance(data.get(text_field), str) and len(data[text_field]) > 255:
            raise _bad(text_field, "is too long (maximum is 255 characters)")
    if data.get("target_url") is not None and not _valid_url(data["target_url"]):
        raise _bad("target_url", "is blocked: Only allowed schemes are http, https")
    name = data.get("name") or data.get("context") or "default"
    ref = data.get("ref") or project.default_branch
    statuses = state.statuses.setdefault((project.id, sha), [])
    current = next(
        (s for s in statuses if s["name"] == name and s["ref"] == ref and s["status"] in ("pending", "running")), None
    )
    event, allowed_from = _STATUS_EVENTS[wanted]
    if current is None:
        current = {
            "id": state.next_id(),
            "sha": sha,
            "ref": ref,
            "status": "created",
            "name": name,
            "target_url": None,
            "description": None,
            "created_at": _now(),
            "started_at": None,
            "finished_at": None,
            "allow_failure": False,
            "author": dict(BOT_USER),
        }
        statuses.append(current)
    if current["status"] not in allowed_from:
        raise HttpError(400, {"message": f"Cannot transition status via :{event} from :{current['status']}"})
    current["status"] = wanted
    for text_field in ("target_url", "description"):
        if data.get(text_field) is not None:
            current[text_field] = data[text_field]
    return 201, current


@route("GET", "/projects/:id/members/all/:user_id")
def get_member(state, q, data, id, user_id):
    project = state.project(id)
    level = project.members.get(int(user_id))
    if level is None:
        raise _not_found("Member")
    user = state.users.get(int(user_id), {"username": f"user{user_id}", "name": f"User {user_id}", "state": "active"})
    return 200, {
        "id": int(user_id),
        "username": user["username"],
        "name": user["name"],
        "access_level": level,
        "state": user["state"],
    }


# ------------------------------------------- repository, merge requests, hooks, members
# What `make onboard` and `make smoke` do through GitLab: a branch with a commit, a merge request
# opened, pushed to, commented on and closed, a project hook, the bot as a member.

MAINTAINER, OWNER = 40, 50


def _maintainer(state: GitLabState, project: Project, level: int = MAINTAINER) -> None:
    if state.access(project) < level:
        raise HttpError(403, {"message": "403 Forbidden"})


def _branch_json(project: Project, name: str) -> dict[str, Any]:
    sha = project.branches[name]
    return {
        "name": name,
        "commit": {"id": sha, "short_id": sha[:8]},
        "merged": False,
        "protected": name == project.default_branch,
        "default": name == project.default_branch,
    }


@route("GET", "/projects/:id/repository/branches/:branch")
def get_branch(state, q, data, id, branch):
    project = state.project(id)
    if unquote(branch) not in project.branches:
        raise _not_found("Branch")
    return 200, _branch_json(project, unquote(branch))


@route("DELETE", "/projects/:id/repository/branches/:branch")
def delete_branch(state, q, data, id, branch):
    project, name = state.project(id), unquote(branch)
    if name not in project.branches:
        raise _not_found("Branch")
    if name == project.default_branch:
        raise HttpError(405, {"message": "405 Method Not Allowed"})
    del project.branches[name]
    return 204, b""


@route("POST", "/projects/:id/repository/commits")
def create_commit(state, q, data, id):
    """One commit of `actions` (create/update/delete a file) on `branch`, which is made from
    `start_branch` when it does not exist yet."""
    project = state.project(id)
    branch, message = _require(data, "branch"), _require(data, "commit_message")
    actions = _require(data, "actions")
    if not isinstance(actions, list) or not all(isinstance(a, dict) for a in actions):
        raise HttpError(400, {"error": "actions is invalid"})
    start = data.get("start_branch") or branch
    if start not in project.branches:
        raise _bad("branch", f"A branch called '{start}' doesn't exist")
    files = dict(project.commits[project.branches[start]])
    for action in actions:
        kind, path = action.get("action"), action.get("file_path")
        if kind not in ("create", "update", "delete") or not isinstance(path, str) or not path:
            raise HttpError(400, {"error": "actions[action] does not have a valid value"})
        if kind == "create" and path in files:
            raise _bad("file_path", f"A file with this name already exists: {path}")
        if kind in ("update", "delete") and path not in files:
            raise _bad("file_path", f"A file with this name doesn't exist: {path}")
        if kind == "delete":
            del files[path]
        else:
            files[path] = str(action.get("content") or "")
    sha = hashlib.sha1(f"{project.branches[start]}{message}{state.next_id()}".encode()).hexdigest()
    project.commits[sha] = files
    old = project.branches.get(branch)
    project.branches[branch] = sha
    stamp = _now()
    for mr in state.merge_requests.values():  # a push to an MR's source branch updates the MR
        if mr["project_id"] == project.id and mr["source_branch"] == branch and mr["state"] == "opened":
            mr["sha"] = sha
            gitlab_hooks.merge_request_changed(state, project, mr, "update", oldrev=old)
    return 201, {
        "id": sha,
        "short_id": sha[:8],
        "title": message.splitlines()[0],
        "message": message,
        "parent_ids": [project.branches.get(start, "")] if old is None else [old],
        "created_at": stamp,
        "committed_date": stamp,
    }


@route("GET", "/projects/:id/merge_requests")
def list_merge_requests(state, q, data, id):
    project = state.project(id)
    wanted = q.get("state", "all")
    if wanted not in ("opened", "closed", "merged", "locked", "all"):
        raise HttpError(400, {"error": "state does not have a valid value"})
    found = [
        mr
        for (project_id, _), mr in sorted(state.merge_requests.items())
        if project_id == project.id
        and wanted in ("all", mr["state"])
        and q.get("source_branch", mr["source_branch"]) == mr["source_branch"]
    ]
    return 200, found


@route("POST", "/projects/:id/merge_requests")
def create_merge_request(state, q, data, id):
    project = state.project(id)
    source, target, title = _require(data, "source_branch"), _require(data, "target_branch"), _require(data, "title")
    for name in (source, target):
        if name not in project.branches:
            raise _bad("source_branch" if name == source else "target_branch", f"{name} does not exist")
    for mr in state.merge_requests.values():
        if (mr["project_id"], mr["source_branch"], mr["target_branch"], mr["state"]) == (
            project.id,
            source,
            target,
            "opened",
        ):
            raise HttpError(
                409, {"message": [f"Another open merge request already exists for this source branch: !{mr['iid']}"]}
            )
    iid = 1 + max((i for (p, i) in state.merge_requests if p == project.id), default=0)
    mr = state.open_merge_request(project.id, iid, sha=project.branches[source], source_branch=source)
    mr.update({"title": title, "description": str(data.get("description") or ""), "target_branch": target})
    mr["author"] = state.author()
    gitlab_hooks.merge_request_changed(state, project, mr, "open")
    return 201, mr


@route("PUT", "/projects/:id/merge_requests/:iid")
def update_merge_request(state, q, data, id, iid):
    project = state.project(id)
    mr = state.merge_request(project, iid)
    event = data.get("state_event")
    if event not in (None, "close", "reopen"):
        raise HttpError(400, {"error": "state_event does not have a valid value"})
    if "title" in data:
        mr["title"] = _require(data, "title")
    if event == "close" and mr["state"] == "opened":
        mr["state"] = "closed"
        gitlab_hooks.merge_request_changed(state, project, mr, "close")
    elif event == "reopen" and mr["state"] == "closed":
        mr["state"] = "opened"
        gitlab_hooks.merge_request_changed(state, project, mr, "reopen")
    return 200, mr


_HOOK_EVENTS = ("push_events", "merge_requests_events", "note_events", "pipeline_events", "tag_push_events")


def _hook_json(hook: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in hook.items() if k != "token"}  # GitLab never shows a hook's token


def _hook_fields(hook: dict[str, Any], data: dict) -> None:
    for name in (*_HOOK_EVENTS, "enable_ssl_verification"):
        if name in data:
            value = data[name]
            if isinstance(value, str) and value in ("true", "false"):
                value = value == "true"
            if not isinstance(value, bool):
                raise HttpError(400, {"error": f"{name} is invalid"})
            hook[name] = value
    if "token" in data:
        hook["token"] = str(data["token"] or "")


@route("GET", "/projects/:id/hooks")
def list_hooks(state, q, data, id):
    project = state.project(id)
    _maintainer(state, project)
    return 200, [_hook_json(h) for h in project.hooks]


@route("POST", "/projects/:id/hooks")
def create_hook(state, q, data, id):
    project = state.project(id)
    _maintainer(state, project)
    url = _require(data, "url")
    if not _valid_url(url):
        raise _bad("url", "is blocked: Only allowed schemes are http, https")
    hook = {"id": state.next_id(), "url": url, "project_id": project.id, "created_at": _now(), "token": ""}
    hook.update({name: name == "push_events" for name in _HOOK_EVENTS})  # GitLab's defaults
    hook["enable_ssl_verification"] = True
    _hook_fields(hook, data)
    project.hooks.append(hook)
    return 201, _hook_json(hook)


@route("PUT", "/projects/:id/hooks/:hook_id")
def update_hook(state, q, data, id, hook_id):
    project = state.project(id)
    _maintainer(state, project)
    hook = next((h for h in project.hooks if h["id"] == int(hook_id)), None)
    if hook is None:
        raise _not_found("Hook")
    if "url" in data:
        if not _valid_url(data["url"]):
            raise _bad("url", "is blocked: Only allowed schemes are http, https")
        hook["url"] = data["url"]
    _hook_fields(hook, data)
    return 200, _hook_json(hook)


@route("POST", "/projects/:id/members")
def add_member(state, q, data, id):
    project = state.project(id)
    _maintainer(state, project)
    user_id, level = _require(data, "user_id"), _require(data, "access_level")
    try:
        user_id, level = int(user_id), int(level)
    except (TypeError, ValueError):
        raise HttpError(400, {"error": "user_id is invalid"}) from None
    if level not in (10, 20, 30, 40, 50):
        raise HttpError(400, {"error": "access_level does not have a valid value"})
    if user_id != BOT_USER["id"] and user_id not in state.users:
        raise _not_found("User")
    if user_id in project.members:
        raise HttpError(409, {"message": "Member already exists"})
    project.members[user_id] = level
    return 201, get_member(state, {}, {}, str(project.id), str(user_id))[1]


@route("GET", "/namespaces/:id")
def get_namespace(state, q, data, id):
    path = unquote(id)
    if path not in state.namespaces:
        raise _not_found("Namespace")
    return 200, {"id": state.namespaces[path], "name": path.rsplit("/", 1)[-1], "path": path, "full_path": path}


@route("POST", "/projects")
def create_project(state, q, data, id=None):
    name, namespace_id = _require(data, "name"), _require(data, "namespace_id")
    namespace = next((p for p, i in state.namespaces.items() if str(i) == str(namespace_id)), None)
    if namespace is None:
        raise _not_found("Namespace")
    path = str(data.get("path") or name)
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,254}", path):
        raise _bad("path", "can contain only letters, digits, '_', '-' and '.'")
    full = f"{namespace}/{path}"
    if any(p.path_with_namespace == full for p in state.projects.values()):
        raise _bad("path", "has already been taken")
    project = state.add_project(state.next_id(), full)
    project.members[state.caller] = OWNER
    return 201, get_project(state, {}, {}, str(project.id))[1]


@route("DELETE", "/projects/:id")
def delete_project(state, q, data, id):
    project = state.project(id)
    _maintainer(state, project, OWNER)
    del state.projects[project.id]
    return 202, {"message": "202 Accepted"}


# ---------------------------------------------------------------------- HTTP plumbing


def _paginate(handler: _Handler, items: list, q: dict) -> list:
    try:
        per_page = min(max(int(q.get("per_page", 20)), 1), 100)
        page = max(int(q.get("page", 1)), 1)
    except ValueError:
        raise HttpError(400, {"error": "page is invalid"}) from None
    total = len(items)
    pages = max((total + per_page - 1) // per_page, 1)
    handler.extra_headers.update(
        {
            "X-Page": str(page),
            "X-Per-Page": str(per_page),
            "X-Total": str(total),
            "X-Total-Pages": str(pages),
            "X-Next-Page": str(page + 1) if page < pages else "",
            "X-Prev-Page": str(page - 1) if page > 1 else "",
        }
    )
    if page < pages:
        base = f"http://{handler.headers.get('Host')}{urlsplit(handler.path).path}"
        others = "&".join(f"{k}={v}" for k, v in q.items() if k not in ("page", "per_page"))
        link = f"{base}?{others + '&' if others else ''}page={page + 1}&per_page={per_page}"
        handler.extra_headers["Link"] = f'<{link}>; rel="next"'
    return items[(page - 1) * per_page : page * per_page]


class _Handler(BaseHTTPRequestHandler):
    server_version = "gitlab-standin"
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
        pass

    def _serve(self, method: str) -> None:
        state: GitLabState = self.server.state  # type: ignore[attr-defined]
        self.extra_headers: dict[str, str] = {}
        parts = urlsplit(self.path)
        # GitLab keeps %2F encoded inside path parameters (file paths, project paths).
        raw_path = parts.path
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        raw_body = self.rfile.read(length) if length else b""
        if not raw_path.startswith("/api/"):  # a browser at GitLab's sign-in and OAuth pages
            from local import gitlab_oauth

            return gitlab_oauth.serve(self, state, method, parts, raw_body)
        try:
            status, payload = self._dispatch(state, method, raw_path, query, raw_body)
        except HttpError as exc:
            status, payload = exc.status, exc.body
        if isinstance(payload, bytes):
            body, ctype = payload, "text/plain; charset=utf-8"
        else:
            if isinstance(payload, list):
                payload = _paginate(self, payload, query)
            body, ctype = json.dumps(payload).encode(), "application/json"
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for name, value in self.extra_headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _dispatch(self, state: GitLabState, method: str, path: str, query: dict, raw_body: bytes):
        caller = state.tokens.get(self.headers.get("PRIVATE-TOKEN") or "")
        if caller is None:
            raise HttpError(401, {"message": "401 Unauthorized"})
        delay = state._delay_for(method, path)
        if delay:
            time.sleep(delay)  # outside the lock: other requests go on meanwhile
        action = state._meanwhile_for(method, path)
        if action is not None:
            action()
        for route_method, pattern, fn, template in _ROUTES:
            match = pattern.match(path)
            if match and route_method == method:
                with state.lock:
                    state.caller = caller
                    state.requests.append((method, template))
                    for index, (matches, status, body) in enumerate(state.faults):
                        if matches(method, path):
                            del state.faults[index]
                            raise HttpError(status, body)
                    data = self._decode(raw_body)
                    return fn(state, query, data, **match.groupdict())
        if any(pattern.match(path) for _, pattern, _, _ in _ROUTES):
            raise HttpError(405, {"error": "405 Method Not Allowed"})
        raise HttpError(404, {"error": "404 Not Found"})

    def _decode(self, raw_body: bytes) -> dict:
        if not raw_body:
            return {}
        ctype = self.headers.get("Content-Type", "")
        try:
            if ctype.startswith("application/json"):
                data = json.loads(raw_body)
            elif ctype.startswith("application/x-www-form-urlencoded"):
                data = {k: v[-1] for k, v in parse_qs(raw_body.decode()).items()}
            else:
                raise HttpError(415, {"error": "415 Unsupported Media Type"})
        except (ValueError, UnicodeDecodeError):
            raise HttpError(400, {"error": "The request body is not valid JSON"}) from None
        if not isinstance(data, dict):
            raise HttpError(400, {"error": "The request body must be a JSON object"})
        return data

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_DELETE(self) -> None:
        self._serve("DELETE")


class GitLabStandIn:
    """`with GitLabStandIn(token) as gitlab:` serves on http://127.0.0.1:<free port>."""

    def __init__(self, token: str, bind: str = "127.0.0.1", port: int = 0) -> None:
        self.state = GitLabState(token)
        self._server = ThreadingHTTPServer((bind, port), _Handler)
        self._server.daemon_threads = True
        self._server.state = self.state  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{'127.0.0.1' if host == '0.0.0.0' else host}:{port}"

    def start(self) -> GitLabStandIn:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> GitLabStandIn:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

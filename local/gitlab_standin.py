"""A small GitLab stand-in: the REST endpoints review apps use, over real HTTP on 127.0.0.1.

Faithful to GitLab's documented API where we use it (paths, status codes, JSON shapes,
pagination headers) and strict about input: missing or invalid fields get GitLab's 400s, an
unknown commit gets a 404, a wrong token a 401. It is driven by the real python-gitlab client
in tests and in the demo. State is in memory and readable directly by the test that owns it.
"""

from __future__ import annotations

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
        # GitLab as an OAuth 2.0 / OpenID Connect provider (local/gitlab_oauth.py).
        self.users: dict[int, dict[str, Any]] = {}
        self.oauth_apps: dict[str, dict[str, Any]] = {}
        self.oauth_codes: dict[str, dict[str, Any]] = {}
        self.oauth_tokens: dict[str, int] = {}
        self.browser_sessions: dict[str, int] = {}
        self.token_scopes: tuple[str, ...] = ("api",)  # the bot token's, as /personal_access_tokens/self says

    def next_id(self) -> int:
        self._ids += 1
        return self._ids

    # ------------------------------------------------------------------ set-up helpers

    def add_project(self, project_id: int, path: str) -> Project:
        project = Project(project_id, path)
        self.projects[project_id] = project
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
    return 200, BOT_USER


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
    files = project.commits.get(ref)
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
        "author": dict(BOT_USER),
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
        if self.headers.get("PRIVATE-TOKEN") != state.token:
            raise HttpError(401, {"message": "401 Unauthorized"})
        delay = state._delay_for(method, path)
        if delay:
            time.sleep(delay)  # outside the lock: other requests go on meanwhile
        for route_method, pattern, fn, template in _ROUTES:
            match = pattern.match(path)
            if match and route_method == method:
                with state.lock:
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

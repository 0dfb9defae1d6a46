"""GitLab as an OAuth 2.0 / OpenID Connect provider, for the stand-in: the sign-in form, and the
`/oauth/authorize`, `/oauth/token` and `/oauth/userinfo` endpoints as GitLab documents them.

Strict where GitLab is: a redirect URI must equal the application's exactly (no wildcards), a PKCE
verifier must match its S256 challenge, a code works once, for ten minutes, for its own client and
redirect URI. Applications are instance-wide and trusted (no consent screen). Left out: the
`id_token` GitLab adds to the token answer (our provider reads userinfo instead), refresh tokens.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from html import escape
from typing import Any
from urllib.parse import parse_qs, urlencode

CODE_SECONDS = 600
SESSION_COOKIE = "_gitlab_session"

_FORM = """<!doctype html><html><head><meta charset="utf-8"><title>Sign in · GitLab</title></head><body>
<h1>Sign in to GitLab</h1>{error}
<form method="post" action="/users/sign_in">
<input type="hidden" name="return_to" value="{return_to}">
<label>Username <input id="user_login" name="username" autocomplete="username"></label>
<label>Password <input id="user_password" name="password" type="password"></label>
<button id="sign_in" type="submit">Sign in</button>
</form></body></html>"""


def serve(handler: Any, state: Any, method: str, parts: Any, raw_body: bytes) -> None:
    query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    form = {k: v[-1] for k, v in parse_qs(raw_body.decode("utf-8", "replace"), keep_blank_values=True).items()}
    route = (method, parts.path)
    with state.lock:
        if route == ("GET", "/users/sign_in"):
            answer = _html(200, _FORM.format(error="", return_to=escape(query.get("return_to", "/"))))
        elif route == ("POST", "/users/sign_in"):
            answer = _sign_in(state, form)
        elif route == ("GET", "/oauth/authorize"):
            answer = _authorize(state, handler, query, parts)
        elif route == ("POST", "/oauth/token"):
            answer = _token(state, handler, form)
        elif route in (("GET", "/oauth/userinfo"), ("POST", "/oauth/userinfo")):
            answer = _userinfo(state, handler)
        else:
            answer = (404, {"Content-Type": "text/plain"}, b"404 Not Found")
    status, headers, body = answer
    handler.send_response(status)
    for name, value in headers.items():
        handler.send_header(name, value)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def _html(status: int, page: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    return status, {"Content-Type": "text/html; charset=utf-8", **headers}, page.encode()


def _json(status: int, data: dict[str, Any], **headers: str) -> tuple[int, dict[str, str], bytes]:
    return (
        status,
        {"Content-Type": "application/json", "Cache-Control": "no-store", **headers},
        json.dumps(data).encode(),
    )


def _redirect(location: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    return 302, {"Location": location, **headers}, b""


def _signed_in_user(state: Any, handler: Any) -> dict[str, Any] | None:
    for part in (handler.headers.get("Cookie") or "").split(";"):
        name, _, value = part.strip().partition("=")
        if name == SESSION_COOKIE and value in state.browser_sessions:
            return state.users.get(state.browser_sessions[value])
    return None


def _sign_in(state: Any, form: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    user = next((u for u in state.users.values() if u["username"] == form.get("username")), None)
    return_to = form.get("return_to", "/")
    if not return_to.startswith("/oauth/"):
        return_to = "/"
    if user is None or not hmac.compare_digest(user["password"], form.get("password", "")):
        error = "<p id='flash'>Invalid login or password.</p>"
        return _html(401, _FORM.format(error=error, return_to=escape(return_to)))
    if user["state"] != "active":
        return _html(403, "<p id='flash'>Your account has been blocked.</p>")
    session = secrets.token_urlsafe(24)
    state.browser_sessions[session] = user["id"]
    return _redirect(return_to, **{"Set-Cookie": f"{SESSION_COOKIE}={session}; path=/; HttpOnly; SameSite=Lax"})


def _authorize(state: Any, handler: Any, q: dict[str, str], parts: Any) -> tuple[int, dict[str, str], bytes]:
    app = state.oauth_apps.get(q.get("client_id", ""))
    if app is None or q.get("redirect_uri") != app["redirect_uri"]:
        # GitLab shows this on its own page: it never redirects to a URI it doesn't know.
        return _html(400, "<h1>An error has occurred</h1><p>The redirect URI included is not valid.</p>")
    redirect = app["redirect_uri"]

    def fail(error: str) -> tuple[int, dict[str, str], bytes]:
        return _redirect(f"{redirect}?{urlencode({'error': error, 'state': q.get('state', '')})}")

    if q.get("response_type") != "code":
        return fail("unsupported_response_type")
    scopes = q.get("scope", "").split()
    if not scopes or not set(scopes) <= set(app["scopes"]):
        return fail("invalid_scope")
    if q.get("code_challenge") and q.get("code_challenge_method") != "S256":
        return fail("invalid_request")
    user = _signed_in_user(state, handler)
    if user is None:
        return _redirect("/users/sign_in?" + urlencode({"return_to": f"{parts.path}?{parts.query}"}))
    code = secrets.token_hex(32)
    state.oauth_codes[code] = {
        "client_id": q["client_id"],
        "redirect_uri": redirect,
        "user_id": user["id"],
        "scope": " ".join(scopes),
        "challenge": q.get("code_challenge", ""),
        "expires": time.time() + CODE_SECONDS,
    }
    return _redirect(f"{redirect}?{urlencode({'code': code, 'state': q.get('state', '')})}")


def _client(handler: Any, form: dict[str, str]) -> tuple[str, str]:
    auth = handler.headers.get("Authorization") or ""
    if auth.startswith("Basic "):
        client_id, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
        return client_id, secret
    return form.get("client_id", ""), form.get("client_secret", "")


def _token(state: Any, handler: Any, form: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    client_id, secret = _client(handler, form)
    app = state.oauth_apps.get(client_id)
    if app is None or not hmac.compare_digest(app["secret"], secret):
        return _json(
            401,
            {
                "error": "invalid_client",
                "error_description": "Client authentication failed due to "
                "unknown client, no client authentication included, or unsupported authentication method.",
            },
        )
    if form.get("grant_type") != "authorization_code":
        return _json(400, {"error": "unsupported_grant_type"})
    grant = state.oauth_codes.pop(form.get("code", ""), None)
    invalid = {
        "error": "invalid_grant",
        "error_description": "The provided authorization grant is invalid, "
        "expired, revoked, does not match the redirection URI used in the authorization request, or was "
        "issued to another client.",
    }
    if grant is None or grant["expires"] < time.time() or grant["client_id"] != client_id:
        return _json(400, invalid)
    if form.get("redirect_uri") != grant["redirect_uri"]:
        return _json(400, invalid)
    if grant["challenge"]:
        digest = hashlib.sha256(form.get("code_verifier", "").encode()).digest()
        if base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != grant["challenge"]:
            return _json(400, invalid)
    token = secrets.token_hex(32)
    state.oauth_tokens[token] = grant["user_id"]
    return _json(
        200,
        {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": 7200,
            "scope": grant["scope"],
            "created_at": int(time.time()),
        },
    )


def _userinfo(state: Any, handler: Any) -> tuple[int, dict[str, str], bytes]:
    auth = handler.headers.get("Authorization") or ""
    user_id = state.oauth_tokens.get(auth[7:]) if auth.startswith("Bearer ") else None
    if user_id is None:
        return _json(401, {"error": "invalid_token"}, **{"WWW-Authenticate": 'Bearer error="invalid_token"'})
    user = state.users[user_id]
    return _json(
        200,
        {
            "sub": str(user["id"]),
            "sub_legacy": hashlib.sha256(str(user["id"]).encode()).hexdigest(),
            "name": user["name"],
            "nickname": user["username"],
            "preferred_username": user["username"],
            "profile": f"http://gitlab.local/{user['username']}",
            "groups": [],
        },
    )

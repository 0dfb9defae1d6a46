"""GitLab as the identity provider behind ours: the authorization URL (PKCE S256, our own state)
and, on the way back, the code exchanged for who signed in. Authlib's OAuth client does the
protocol; this module checks what GitLab's userinfo answers before anyone relies on it."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from authlib.common.errors import AuthlibBaseError as OAuthError
from authlib.integrations.requests_client import OAuth2Session

from review_apps.signin.provider import User

_USERNAME = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9_.-]{0,254}")


class OAuthAppError(ValueError):
    """The GitLab OAuth application's parameter is missing a field or is not JSON (an install mistake)."""


class GitLabSignInError(Exception):
    """GitLab refused the code or answered something that is not a user."""


class GitLabUnavailable(GitLabSignInError):
    """GitLab did not answer the sign-in in time, or answered 429 or 5xx: try again shortly."""


@dataclass(frozen=True)
class OAuthApp:
    application_id: str
    secret: str = field(repr=False)

    @staticmethod
    def parse(raw: str, parameter: str) -> OAuthApp:
        try:
            data = json.loads(raw)
        except ValueError:
            data = None
        if not isinstance(data, dict) or not all(
            isinstance(data.get(k), str) and data[k] for k in ("application_id", "secret")
        ):
            raise OAuthAppError(
                f'SSM parameter {parameter} must hold JSON {{"application_id": "...", "secret": "..."}} '
                "from the GitLab OAuth application (Admin area > Applications)"
            )
        return OAuthApp(data["application_id"], data["secret"])


def _session(app: OAuthApp, callback_url: str) -> OAuth2Session:
    return OAuth2Session(
        app.application_id,
        app.secret,
        scope="openid",
        redirect_uri=callback_url,
        code_challenge_method="S256",
        token_endpoint_auth_method="client_secret_post",
    )


def authorization_url(gitlab_url: str, app: OAuthApp, callback_url: str, state: str, verifier: str) -> str:
    url, _ = _session(app, callback_url).create_authorization_url(
        f"{gitlab_url}/oauth/authorize", state=state, code_verifier=verifier
    )
    return str(url)


def signed_in_user(gitlab_url: str, app: OAuthApp, callback_url: str, code: str, verifier: str, timeout: float) -> User:
    session = _session(app, callback_url)
    try:
        session.fetch_token(f"{gitlab_url}/oauth/token", code=code, code_verifier=verifier, timeout=timeout)
        answer = session.get(f"{gitlab_url}/oauth/userinfo", timeout=timeout)
    except OAuthError as exc:  # GitLab answered, with an OAuth error: the code is bogus, used or expired
        raise GitLabSignInError(f"GitLab refused the code ({exc.error})") from None
    except Exception as exc:  # requests' errors, or an answer that is not a token (a 5xx page)
        raise GitLabUnavailable(type(exc).__name__) from None
    if answer.status_code == 429 or answer.status_code >= 500:
        raise GitLabUnavailable(f"userinfo answered {answer.status_code}")
    if answer.status_code != 200:
        raise GitLabSignInError(f"userinfo answered {answer.status_code}")
    try:
        return _user(answer.json())
    except ValueError:
        raise GitLabSignInError("userinfo is not JSON") from None


def _user(info: Any) -> User:
    if not isinstance(info, dict):
        raise GitLabSignInError("userinfo is not an object")
    sub, username = info.get("sub"), info.get("nickname") or info.get("preferred_username")
    name = info.get("name") or username
    if not (isinstance(sub, str) and sub.isdigit() and len(sub) <= 12):
        raise GitLabSignInError("userinfo has no numeric sub")
    if not (isinstance(username, str) and _USERNAME.fullmatch(username)):
        raise GitLabSignInError("userinfo has no username")
    return User(int(sub), username, str(name)[:255])

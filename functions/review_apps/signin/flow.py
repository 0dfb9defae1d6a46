"""Signing a visitor in, carried out: the provider's endpoints, one method each.

  ALB ──/authorize──▶ (no session) ──▶ GitLab /oauth/authorize ──▶ /callback ──▶ may they? ──▶ ALB
                      (session)    ──────────────────────────────────────────────▶ may they? ──▶ ALB

"May they" is asked of GitLab for every review host, even within one provider session, so one
sign-in serves every app a person may see, and no more. Redirects go only to the load balancer's
callback on a review host of this install that has an app (review_apps.lifecycle.access).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from functools import cached_property
from typing import Any

import gitlab
import requests
from authlib.common.security import generate_token
from authlib.oauth2 import OAuth2Error

from review_apps.adapters.signin_store import MEMBER, PENDING, SESSION
from review_apps.lifecycle import access
from review_apps.model.record import Record
from review_apps.services import Services
from review_apps.signin import gitlab_oauth, pages
from review_apps.signin.provider import HttpRequest, LoadBalancer, Provider, Response, User

# `__Host-`: the browser sets them only over HTTPS, for this host alone and with Path=/, so another
# site (another API Gateway host, with an old public-suffix list) cannot plant one.
PENDING_COOKIE = "__Host-review_apps_signin"  # binds a sign-in to the browser that started it (one per sign-in)
SESSION_COOKIE = "__Host-review_apps_session"
PENDING_SECONDS = 600
SESSION_SECONDS = 12 * 3600  # one GitLab sign-in lasts at most a working day
_SECRET_MAX = 200
MEMBER_SECONDS = 60
# What a pending sign-in keeps of the load balancer's authorization request, at most _PARAM_MAX each.
_KEPT_PARAMS = ("client_id", "redirect_uri", "response_type", "scope", "state", "nonce")
_PARAM_MAX = 512
AUTHORIZE_PER_MINUTE = 10
# GitLab busy, failing or slow: the visitor is asked to try again shortly, never shown a 500.
GITLAB_UNWELL = (gitlab.exceptions.GitlabError, requests.RequestException)


def _pending_cookie(state: str) -> str:
    """Each sign-in under way has its own cookie, so two tabs signing in at once don't undo each other."""
    return f"{PENDING_COOKIE}_{hashlib.sha256(state.encode()).hexdigest()[:16]}"


def _cookie(name: str, value: str, max_age: int) -> str:
    return f"{name}={value}; Path=/; Max-Age={max_age}; Secure; HttpOnly; SameSite=Lax"


class SignIn:
    def __init__(self, services: Services, logger: Any, issuer: str) -> None:
        self.services = services
        self.settings = services.settings
        self.logger = logger
        self.issuer = issuer
        self._records: dict[str, Record | None] = {}

    @cached_property
    def provider(self) -> Provider:
        return Provider(self._client, self.services.signin_store, self.issuer, self.services.signing_key)

    def _client(self, client_id: str) -> LoadBalancer | None:
        """The catch-all rule's client (the install's), for any review host with an app; or a
        review host's own client, for that host alone."""
        install = self.services.oidc_client()
        if hmac.compare_digest(client_id.encode(), install["client_id"].encode()):
            return LoadBalancer(install["client_id"], install["client_secret"], self._has_app)
        host = access.client_host(install["client_id"], client_id)
        if host is None:
            return None
        own_id, own_secret = access.host_client(install["client_id"], install["client_secret"], host)

        def its_host(redirect_uri: str) -> bool:
            target = access.redirect_host(redirect_uri, self.settings.review_domain)
            return target is not None and target[0] == host and self._has_app(redirect_uri)

        return LoadBalancer(own_id, own_secret, its_host)

    @property
    def callback_url(self) -> str:
        return f"{self.issuer}/callback"

    def _has_app(self, redirect_uri: str) -> bool:
        target = access.redirect_host(redirect_uri, self.settings.review_domain)
        if target is None:
            return False
        host, mr = target
        if host not in self._records:
            self._records[host] = self.services.store.get(*mr)
        return access.has_app_at(self._records[host], host)

    # ------------------------------------------------------------------ endpoints

    def discovery(self) -> Response:
        return _json(200, self.provider.discovery())

    def jwks(self) -> Response:
        return _json(200, {"keys": [self.services.signing_key.jwk()]})

    def authorize(self, request: HttpRequest, cookies: dict[str, str]) -> Response:
        try:
            grant = self.provider.get_consent_grant(request)
        except OAuth2Error as error:
            self.logger.info("authorization request refused", extra={"error": error.error})
            return pages.bad_request(_explain(error))
        session = cookies.get(SESSION_COOKIE, "")
        user = self._session_user(session)
        if user is None:
            return self._to_gitlab(request.params)
        if not self.services.signin_store.within_rate(session, AUTHORIZE_PER_MINUTE):
            self.logger.info("sign-in requests over the rate", extra={"user_id": user.id})
            return pages.too_many()
        return self._grant(grant, user, [])

    def callback(self, request: HttpRequest, cookies: dict[str, str]) -> Response:
        params = request.params
        if "error" in params:
            return pages.bad_request("GitLab did not sign you in: the sign-in was declined or cancelled.")
        state = params.get("state", "")[:_SECRET_MAX]
        bound = cookies.get(_pending_cookie(state), "")
        clear = _cookie(_pending_cookie(state), "", 0)
        if not (state and bound and len(state) <= _SECRET_MAX and hmac.compare_digest(state.encode(), bound.encode())):
            return pages.bad_request("This sign-in was started in another browser, or its cookie has expired.")
        pending = self.services.signin_store.take(PENDING, state)
        if pending is None or not params.get("code"):
            return pages.bad_request("This sign-in has expired or was already used.")
        try:
            user = gitlab_oauth.signed_in_user(
                self.settings.gitlab_url,
                self.services.gitlab_oauth_app(),
                self.callback_url,
                params["code"][:_SECRET_MAX],
                pending["verifier"],
                timeout=3.0,
            )
        except gitlab_oauth.GitLabUnavailable as exc:
            self.logger.warning("GitLab did not answer the sign-in", extra={"why": str(exc)})
            return pages.try_again_shortly()
        except gitlab_oauth.GitLabSignInError as exc:
            self.logger.info("GitLab did not accept the sign-in", extra={"why": str(exc)})
            return pages.code_refused()
        session = generate_token(48)
        self.services.signin_store.put(SESSION, session, user.as_dict(), SESSION_SECONDS)
        self.logger.info("signed in with GitLab", extra={"user_id": user.id})
        original = HttpRequest("GET", f"{self.issuer}/authorize", dict(pending["params"]), {})
        try:
            grant = self.provider.get_consent_grant(original)  # the app may have gone while they signed in
        except OAuth2Error as error:
            return pages.bad_request(_explain(error))
        return self._grant(grant, user, [_cookie(SESSION_COOKIE, session, SESSION_SECONDS), clear])

    def token(self, request: HttpRequest) -> Response:
        if not _readable_basic(request.headers.get("authorization", "")):
            return _json(401, {"error": "invalid_client", "error_description": "unreadable client credentials"})
        answer: Response = self.provider.create_token_response(request)
        self.logger.info("token request answered", extra={"status": answer.status})
        return answer

    def userinfo(self, request: HttpRequest) -> Response:
        return self.provider.userinfo(request.headers.get("authorization", ""))

    # ------------------------------------------------------------------ steps

    def _member(self, project_id: int, user_id: int) -> access.Member | None:
        """GitLab's answer, remembered MEMBER_SECONDS per user and project: a signed-in stranger
        costs the bot's GitLab quota once a minute at most, and a removal still locks out within
        the load balancer's session (README, Who can open a review app)."""
        store, key = self.services.signin_store, f"{project_id}/{user_id}"
        known = store.get(MEMBER, key)
        if known is not None:
            return access.Member(int(known["level"]), str(known["state"])) if known.get("level") else None
        member = self.services.gitlab_reader.member(project_id, user_id)
        answer = {"level": member.access_level, "state": member.state} if member else {"level": 0, "state": ""}
        store.put(MEMBER, key, answer, MEMBER_SECONDS, replace=True)
        return member

    def _session_user(self, session: str) -> User | None:
        if not session or len(session) > _SECRET_MAX:
            return None
        data = self.services.signin_store.get(SESSION, session)
        return User.from_dict(data) if data else None

    def _to_gitlab(self, params: dict[str, str]) -> Response:
        """Off to GitLab, keeping only what the load balancer's request needs to be answered after
        (each bounded; anything else it carried is dropped): anyone can send this request, so what
        it stores must stay small."""
        state, verifier = generate_token(32), generate_token(64)
        kept = {name: params[name][:_PARAM_MAX] for name in _KEPT_PARAMS if name in params}
        self.services.signin_store.put(PENDING, state, {"params": kept, "verifier": verifier}, PENDING_SECONDS)
        url = gitlab_oauth.authorization_url(
            self.settings.gitlab_url, self.services.gitlab_oauth_app(), self.callback_url, state, verifier
        )
        cookie = _cookie(_pending_cookie(state), state, PENDING_SECONDS)
        return Response(302, "", {"Location": url, "Cache-Control": "no-store"}, [cookie])

    def _grant(self, grant: Any, user: User, cookies: list[str]) -> Response:
        """Back to the load balancer with a code, if GitLab says this user may see this MR's app."""
        redirect_uri = grant.request.payload.redirect_uri
        host, _ = access.redirect_host(redirect_uri, self.settings.review_domain) or ("", (0, 0))
        record = self._records.get(host)
        if record is None:  # get_consent_grant checked the redirect URI against this very record
            return pages.bad_request(_explain_redirect())
        try:
            member = self._member(record.project_id, user.id)
        except GITLAB_UNWELL as exc:
            self.logger.warning("GitLab did not say who may open the app", extra={"error": type(exc).__name__})
            return pages.try_again_shortly()
        refusal = access.may_open(member, self.settings.min_access_level)
        if refusal is not None:
            self.logger.info("sign-in refused", extra={"user_id": user.id, "mr": record.key, "reason": refusal.reason})
            return pages.refused(refusal.text, user.username, cookies)
        answer: Response = self.provider.create_authorization_response(grant.request, grant_user=user, grant=grant)
        answer.cookies.extend(cookies)
        self.logger.info("sign-in granted", extra={"user_id": user.id, "mr": record.key})
        return answer


def _readable_basic(authorization: str) -> bool:
    """Whether HTTP Basic credentials (if that is what is sent) decode to UTF-8 `id:secret`:
    Authlib would raise on the ones that don't."""
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "basic":
        return True
    try:
        return ":" in base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return False


def _explain_redirect() -> str:
    return "It does not come back to a review app of this install that is running, starting or asleep."


def _explain(error: OAuth2Error) -> str:
    if error.error in ("invalid_request", "invalid_client") and "redirect" in str(error.description or "").lower():
        return _explain_redirect()
    known = {
        "invalid_client": "It does not come from this install's load balancer.",
        "invalid_scope": "It asks for more than this install gives (openid and profile).",
        "unsupported_response_type": "It asks for something other than a sign-in code.",
        "unauthorized_client": "It asks for something other than a sign-in code.",
    }
    return known.get(error.error, "It is missing something a sign-in request needs.")


def _json(status: int, data: dict[str, Any]) -> Response:
    return Response(status, json.dumps(data), {"Content-Type": "application/json", "Cache-Control": "no-store"})

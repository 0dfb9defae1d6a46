"""AuthFunction: the install's OpenID Connect provider, for the load balancer's sign-in of review
app visitors, served by an HTTP API under /auth/. Parse → one step of review_apps.signin.flow →
answer. The issuer is this API's own address, as API Gateway names it in each request."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any
from urllib.parse import parse_qsl

from aws_lambda_powertools import Logger
from requests.structures import CaseInsensitiveDict

from review_apps.services import Services
from review_apps.settings import load_settings
from review_apps.signin import pages
from review_apps.signin.flow import SignIn
from review_apps.signin.provider import HttpRequest, Response

logger = Logger(service="review-apps-auth")
services = Services(load_settings(), in_request_path=True)  # a person is waiting
_BODY_MAX = 8192
MAX_FIELDS = 30
# What OAuth parameters are made of here (URLs, codes, states, scopes): printable ASCII without `"`
# and `\`, which Authlib also refuses to echo in an error description (it would raise).
_PLAIN = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]*")
_ROUTES = {
    ("GET", "/auth/.well-known/openid-configuration"): "discovery",
    ("GET", "/auth/jwks"): "jwks",
    ("GET", "/auth/authorize"): "authorize",
    ("GET", "/auth/callback"): "callback",
    ("POST", "/auth/token"): "token",
    ("GET", "/auth/userinfo"): "userinfo",
    ("POST", "/auth/userinfo"): "userinfo",
}


class BadRequest(ValueError):
    pass


def _params(raw: str) -> dict[str, str]:
    try:
        pairs = parse_qsl(raw, keep_blank_values=True, max_num_fields=MAX_FIELDS)
    except ValueError:
        raise BadRequest(f"it has more than {MAX_FIELDS} parameters") from None
    names = [name for name, _ in pairs]
    if len(names) != len(set(names)):  # OAuth 2.0: a parameter must not be repeated
        raise BadRequest("a parameter is repeated")
    if not all(_PLAIN.fullmatch(part) for pair in pairs for part in pair):
        raise BadRequest("a parameter holds characters no sign-in request has")
    return dict(pairs)


def _cookies(event: dict[str, Any]) -> dict[str, str]:
    """The request's cookies; a name sent twice counts as not sent (which of two is ours can't be
    told, and a planted one must not win)."""
    jar: dict[str, str] = {}
    twice: set[str] = set()
    for entry in event.get("cookies") or []:
        name, _, value = str(entry).partition("=")
        name = name.strip()
        if name in jar:
            twice.add(name)
        jar[name] = value.strip()
    return {name: value for name, value in jar.items() if name not in twice}


def _request(event: dict[str, Any], issuer: str) -> HttpRequest:
    http = (event.get("requestContext") or {}).get("http") or {}
    method = str(http.get("method") or "GET").upper()
    query = str(event.get("rawQueryString") or "")
    params = _params(query) if method == "GET" else {}
    if method == "POST":
        body = str(event.get("body") or "")
        if event.get("isBase64Encoded"):
            try:
                body = base64.b64decode(body, validate=True).decode("utf-8", errors="replace")
            except (binascii.Error, ValueError):
                raise BadRequest("its body is marked base64 but is not") from None
        if len(body) > _BODY_MAX:
            raise BadRequest("the body is too large")
        params = _params(body)
    headers = CaseInsensitiveDict({str(k): str(v) for k, v in (event.get("headers") or {}).items()})
    path = str(event.get("rawPath") or "")
    return HttpRequest(method, f"{issuer}{path.removeprefix('/auth')}", params, headers)  # type: ignore[arg-type]


def _issuer(event: dict[str, Any]) -> str:
    # The template can't name this API in the function's own environment (the API depends on the
    # function), so the issuer is the address API Gateway served this request on.
    domain = str((event.get("requestContext") or {}).get("domainName") or "")
    return services.settings.oidc_issuer or f"https://{domain}/auth"


def _answer(response: Response) -> dict[str, Any]:
    answer: dict[str, Any] = {"statusCode": response.status, "headers": response.headers, "body": response.body}
    if response.cookies:
        answer["cookies"] = response.cookies
    return answer


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    services.budget(context)
    event = event if isinstance(event, dict) else {}
    http = (event.get("requestContext") or {}).get("http") or {}
    step = _ROUTES.get((str(http.get("method") or "").upper(), str(event.get("rawPath") or "")))
    if step is None:
        return _answer(pages.page(404, "Not found", "This address is not part of review app sign-in."))
    issuer = _issuer(event)
    try:
        request = _request(event, issuer)
    except BadRequest as exc:
        return _answer(pages.bad_request(f"It is malformed: {exc}."))
    flow = SignIn(services, logger, issuer)
    if step == "discovery":
        response = flow.discovery()
    elif step == "jwks":
        response = flow.jwks()
    elif step == "authorize":
        response = flow.authorize(request, _cookies(event))
    elif step == "callback":
        response = flow.callback(request, _cookies(event))
    elif step == "token":
        response = flow.token(request)
    else:
        response = flow.userinfo(request)
    logger.info("sign-in step answered", extra={"step": step, "status": response.status})
    return _answer(response)

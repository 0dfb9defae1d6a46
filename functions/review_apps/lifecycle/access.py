"""Who may open a review app, as pure rules: which sign-in redirects the install's own OpenID
Connect provider honours, and whether a GitLab user may see one MR's app.

The provider answers only the load balancer, and the load balancer only ever asks to come back to
`https://<review host>/oauth2/idpresponse`. Anything else is refused without a redirect, so no
input can make the install send a browser (and a code) anywhere but one of its own review hosts.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from enum import IntEnum

from review_apps.lifecycle import addresses
from review_apps.model.record import Record
from review_apps.model.values import Status, StopReason

# The path the ALB's authenticate-oidc action receives the provider's answer on.
ALB_CALLBACK_PATH = "/oauth2/idpresponse"
REDIRECT_URI_MAX = 400
# A DNS name as it may stand in a URL: no userinfo, no port, no percent-escapes, no IP literal.
_REDIRECT = re.compile(r"https://([a-z0-9.-]{1,253})" + re.escape(ALB_CALLBACK_PATH))
# Apps a visitor can reach: starting, live, asleep (a visit wakes it) or waiting for a slot.
_HOSTNAME = re.compile(r"[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?")
_OPENABLE = frozenset({Status.DEPLOYING, Status.LIVE, Status.ASLEEP, Status.QUEUED})


class AccessLevel(IntEnum):
    """GitLab's project access levels (the members API's `access_level`)."""

    GUEST = 10
    PLANNER = 15
    REPORTER = 20
    DEVELOPER = 30
    MAINTAINER = 40
    OWNER = 50


def level_name(level: int) -> str:
    try:
        return AccessLevel(level).name.capitalize()
    except ValueError:
        return f"access level {level}"


def redirect_host(redirect_uri: str, review_domain: str) -> tuple[str, tuple[int, int]] | None:
    """(host, (project id, MR iid)) when `redirect_uri` is exactly the ALB's callback on one of
    this install's review hosts; None for anything else. The caller still checks that an app of
    this install lives at that host (the record names it)."""
    if not review_domain or not isinstance(redirect_uri, str) or len(redirect_uri) > REDIRECT_URI_MAX:
        return None
    match = _REDIRECT.fullmatch(redirect_uri)
    if match is None:
        return None
    host = match.group(1)
    mr = addresses.parse_host(host, review_domain)
    return (host, mr) if mr is not None else None


def has_app_at(record: Record | None, host: str) -> bool:
    """The MR's record names `host` and has an app a visitor can reach there."""
    if record is None or not record.host or record.host != host:
        return False
    return record.status in _OPENABLE or (record.status == Status.STOPPING and record.stop_reason == StopReason.ASLEEP)


@dataclass(frozen=True)
class Member:
    """A user's standing in a project, as GitLab's members API says it."""

    access_level: int
    state: str = "active"


@dataclass(frozen=True)
class Refusal:
    """Why a signed-in user may not open the app; `text` is safe to show them."""

    reason: str  # "not_member", "too_low", "blocked"
    text: str


def may_open(member: Member | None, min_level: int) -> Refusal | None:
    """None when the user may open the project's review apps; otherwise why not."""
    needed = level_name(min_level)
    # The words name no project: they are shown to people who may not know it exists.
    ask = f"Ask the project's maintainers for {needed} access or more, then open the address again."
    if member is None:
        return Refusal(
            "not_member", f"Only members of this review app's project with {needed} access or more can open it. {ask}"
        )
    if member.state != "active":
        return Refusal("blocked", f"Your GitLab account is {member.state}, so it cannot open review apps.")
    if member.access_level < min_level:
        have = level_name(member.access_level)
        return Refusal(
            "too_low", f"Your access to this review app's project is {have}; review apps need {needed} or more. {ask}"
        )
    return None


def host_client(base_id: str, base_secret: str, host: str) -> tuple[str, str]:
    """The client id and secret a review host's own rule signs visitors in with: its own, derived
    from the install's (the catch-all rule keeps the install's). A session or a code made for one
    host's client is not another host's: the provider issues a code only to the client of the
    redirect URI's host, and redeems it only for that client."""
    host = addresses.normalize_host(host)
    secret = hmac.new(base_secret.encode(), f"review-host-client:{host}".encode(), hashlib.sha256).hexdigest()
    return f"{base_id}.{host}", secret


def client_host(base_id: str, client_id: str) -> str | None:
    """The host a per-host client id names, or None when it is not one of this install's."""
    prefix = f"{base_id}."
    if not client_id.startswith(prefix) or len(client_id) <= len(prefix):
        return None
    host = client_id[len(prefix) :]
    return host if _HOSTNAME.fullmatch(host) else None

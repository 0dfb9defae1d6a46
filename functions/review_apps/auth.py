"""Is this request from our GitLab? The secret token, and GitLab's signing tokens.

Signing tokens (GitLab 19+) follow the Standard Webhooks scheme: the `webhook-signature`
header carries one or more `v1,<base64 HMAC-SHA256>` of "{webhook-id}.{webhook-timestamp}.{body}",
keyed with the base64 part of a `whsec_…` secret. Every comparison is constant-time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

SIGNATURE_TOLERANCE_SECONDS = 300


class SigningSecretError(ValueError):
    """The configured signing secret is not a `whsec_<base64>` value (an install mistake)."""


def token_matches(given: str, expected: str) -> bool:
    return bool(given) and bool(expected) and hmac.compare_digest(given.encode(), expected.encode())


def project_token(install_secret: str, project_id: int, version: int = 1) -> str:
    """The secret token for one project's own webhook: it proves the sender may speak for
    that project only, so a project's maintainers never hold the install's secret. Rotating the
    project's version (make project-token ROTATE=1) revokes its old token alone; version 1 is
    the token of installs from before versions existed, so nobody re-issues on upgrade."""
    message = str(project_id) if version == 1 else f"{project_id}:v{version}"
    return hmac.new(install_secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def signing_key(secret: str) -> bytes:
    if not secret.startswith("whsec_"):
        raise SigningSecretError("the webhook signing secret must look like whsec_<base64>")
    try:
        return base64.b64decode(secret[len("whsec_") :], validate=True)
    except (binascii.Error, ValueError):
        raise SigningSecretError("the webhook signing secret's part after whsec_ is not base64") from None


def sign(key: bytes, webhook_id: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(key, f"{webhook_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signature_problem(headers: dict[str, str], body: bytes, key: bytes, now: int) -> str | None:
    """None when the request is signed with `key` and fresh; otherwise what is wrong."""
    webhook_id = headers.get("webhook-id") or ""
    timestamp = headers.get("webhook-timestamp") or ""
    signatures = headers.get("webhook-signature") or ""
    if not (webhook_id and timestamp and signatures):
        return "missing webhook-id, webhook-timestamp or webhook-signature header"
    if not timestamp.isdigit():
        return "webhook-timestamp must be Unix seconds"
    if abs(now - int(timestamp)) > SIGNATURE_TOLERANCE_SECONDS:
        return "webhook-timestamp is more than 5 minutes away from now"
    expected = sign(key, webhook_id, timestamp, body)
    for candidate in signatures.split():
        if hmac.compare_digest(candidate.encode(), expected.encode()):
            return None
    return "webhook-signature does not match"

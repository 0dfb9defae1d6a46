"""The secret token and Standard Webhooks signatures."""

from __future__ import annotations

import base64

import pytest

from review_apps import auth

KEY = b"0123456789abcdef0123456789abcdef"
SECRET = "whsec_" + base64.b64encode(KEY).decode()
NOW = 1_800_000_000
BODY = b'{"object_kind":"merge_request"}'


def headers(signature: str | None = None, timestamp: int = NOW, webhook_id: str = "msg_1") -> dict:
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature or auth.sign(KEY, webhook_id, str(timestamp), BODY),
    }


def test_token():
    assert auth.token_matches("s3cret", "s3cret")
    assert not auth.token_matches("s3cret ", "s3cret")
    assert not auth.token_matches("", "")
    assert not auth.token_matches("x", "")


def test_signing_key_from_whsec():
    assert auth.signing_key(SECRET) == KEY
    with pytest.raises(auth.SigningSecretError):
        auth.signing_key("not-whsec")
    with pytest.raises(auth.SigningSecretError):
        auth.signing_key("whsec_%%%")


def test_known_signature_vector():
    # HMAC-SHA256 over "msg_1.1800000000.<body>", computed independently with openssl.
    assert auth.sign(KEY, "msg_1", "1800000000", BODY) == "v1,tWJQuIjiMvTIklENA9W5EhB6V9/Gftb+ZbX1SN5E3bE="


def test_valid_signature_passes_even_among_others():
    assert auth.signature_problem(headers(), BODY, KEY, NOW) is None
    several = "v1,bm9wZQ== " + auth.sign(KEY, "msg_1", str(NOW), BODY)
    assert auth.signature_problem(headers(several), BODY, KEY, NOW) is None


@pytest.mark.parametrize(
    ("request_headers", "body", "now", "problem"),
    [
        ({}, BODY, NOW, "missing webhook-id"),
        (headers("v1,bm9wZQ=="), BODY, NOW, "does not match"),
        (headers(), BODY + b" ", NOW, "does not match"),
        (headers(timestamp=NOW - 301), BODY, NOW, "more than 5 minutes"),
        (headers(timestamp=NOW + 301), BODY, NOW, "more than 5 minutes"),
        ({**headers(), "webhook-timestamp": "soon"}, BODY, NOW, "Unix seconds"),
        ({**headers(), "webhook-id": "msg_2"}, BODY, NOW, "does not match"),
    ],
)
def test_bad_signatures(request_headers, body, now, problem):
    assert problem in auth.signature_problem(request_headers, body, KEY, now)


def test_the_project_token_command_without_the_table_prints_nothing(capsys, monkeypatch):
    import io

    from tools import project_token as command

    """Without the records table it prints nothing: only the table knows whether version 1 was
    revoked (the integration suite prints and rotates tokens against a table)."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "TABLE_NAME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setattr("sys.stdin", io.StringIO("install-secret\n"))
    assert command.main(["42", "--secret-stdin"]) == 2
    shown = capsys.readouterr()
    assert shown.out == "" and "needs AWS credentials and a Region" in shown.err

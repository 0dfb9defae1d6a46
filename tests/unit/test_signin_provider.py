"""The sign-in provider's protocol rules, without I/O: every refusal of the authorization and
token endpoints, the ID token's claims, single-use codes, and userinfo. The store's contract
(put once, get, take once, expire) is held in memory here; the integration tests use DynamoDB."""

from __future__ import annotations

import base64
import time
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
import time_machine
from authlib.oauth2 import OAuth2Error
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from requests.structures import CaseInsensitiveDict

from review_apps.adapters.signing_key import KmsSigningKey
from review_apps.signin.provider import HttpRequest, LoadBalancer, Provider, User

ISSUER = "https://abc.execute-api.eu-west-1.amazonaws.com/auth"
CLIENT, SECRET = "install-alb", "Xk2v9QmR7tLp4WzN8cYb3HdF6gJs1AeU5oIq0rTy7uVw2Bn4"
GOOD = "https://shop-mr7-p42.review.example.com/oauth2/idpresponse"
DANA = User(61, "dana", "Dana Developer")


class MemoryStore:
    def __init__(self) -> None:
        self.items: dict[tuple[str, str], tuple[dict, float]] = {}

    def put(self, kind: str, secret: str, data: dict, lifetime: int) -> None:
        assert (kind, secret) not in self.items
        self.items[(kind, secret)] = (data, time.time() + lifetime)

    def get(self, kind: str, secret: str) -> dict | None:
        data, expires = self.items.get((kind, secret), (None, 0))
        return data if expires > time.time() else None

    def take(self, kind: str, secret: str) -> dict | None:
        data, expires = self.items.pop((kind, secret), (None, 0))
        return data if expires > time.time() else None


class MemoryKms:
    """KMS's Sign and GetPublicKey for one RSA key, in memory (the integration tests use moto's)."""

    def __init__(self) -> None:
        self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def get_public_key(self, KeyId: str) -> dict:
        der = self.private.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        return {"PublicKey": der}

    def sign(self, KeyId: str, Message: bytes, MessageType: str, SigningAlgorithm: str) -> dict:
        assert SigningAlgorithm == "RSASSA_PKCS1_V1_5_SHA_256" and MessageType in ("RAW", "DIGEST")
        hashed = Prehashed(hashes.SHA256()) if MessageType == "DIGEST" else hashes.SHA256()
        return {"Signature": self.private.sign(Message, padding.PKCS1v15(), hashed)}


KMS = MemoryKms()
KEY = KmsSigningKey(lambda: KMS, "arn:aws:kms:eu-west-1:111122223333:key/1234")


@pytest.fixture
def provider() -> Provider:
    client = LoadBalancer(CLIENT, SECRET, lambda uri: uri == GOOD)
    return Provider(lambda client_id: client if client_id == CLIENT else None, MemoryStore(), ISSUER, KEY)


def authorize(provider: Provider, **params: str):
    query = {
        "client_id": CLIENT,
        "redirect_uri": GOOD,
        "response_type": "code",
        "scope": "openid",
        "state": "alb-state",
        "nonce": "alb-nonce",
        **params,
    }
    return provider.get_consent_grant(HttpRequest("GET", f"{ISSUER}/authorize", query, CaseInsensitiveDict()))


def code(provider: Provider, **params: str) -> str:
    grant = authorize(provider, **params)
    answer = provider.create_authorization_response(grant.request, grant_user=DANA, grant=grant)
    location = urlsplit(answer.headers["Location"])
    assert answer.status == 302 and f"https://{location.netloc}{location.path}" == GOOD
    query = parse_qs(location.query)
    assert query["state"] == ["alb-state"]
    return query["code"][0]


def token(provider: Provider, form: dict[str, str], secret: str | None = SECRET, client: str = CLIENT):
    headers = CaseInsensitiveDict({"Content-Type": "application/x-www-form-urlencoded"})
    if secret is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{client}:{secret}".encode()).decode()
    return provider.create_token_response(HttpRequest("POST", f"{ISSUER}/token", form, headers))


def redeem(provider: Provider, the_code: str, redirect: str = GOOD, **kwargs):
    return token(provider, {"grant_type": "authorization_code", "code": the_code, "redirect_uri": redirect}, **kwargs)


def error(answer) -> str:
    import json

    return json.loads(answer.body)["error"]


def test_a_code_gives_an_id_token_for_the_alb_and_works_once(provider):
    the_code = code(provider)
    answer = redeem(provider, the_code)
    assert answer.status == 200 and answer.headers["Cache-Control"] == "no-store"
    import json

    tokens = json.loads(answer.body)
    # As a relying party would, with PyJWT's defaults: the key from the JWKS, RS256.
    key = jwt.PyJWK.from_dict(KEY.jwk())
    assert jwt.get_unverified_header(tokens["id_token"]) == {"alg": "RS256", "kid": KEY.kid, "typ": "JWT"}
    claims = jwt.decode(tokens["id_token"], key, algorithms=["RS256"], audience=CLIENT, issuer=ISSUER)
    assert (claims["sub"], claims["nonce"], claims["preferred_username"]) == ("61", "alb-nonce", "dana")
    assert 0 < claims["exp"] - time.time() <= 300 and tokens["token_type"].lower() == "bearer"
    info = provider.userinfo(f"Bearer {tokens['access_token']}")
    assert info.status == 200 and json.loads(info.body) == {
        "sub": "61",
        "preferred_username": "dana",
        "name": "Dana Developer",
    }
    replay = redeem(provider, the_code)
    assert replay.status == 400 and error(replay) == "invalid_grant"


def test_client_secret_post_is_accepted(provider):
    form = {
        "grant_type": "authorization_code",
        "code": code(provider),
        "redirect_uri": GOOD,
        "client_id": CLIENT,
        "client_secret": SECRET,
    }
    assert token(provider, form, secret=None).status == 200


@pytest.mark.parametrize(("secret", "client"), [("wrong", CLIENT), ("", CLIENT), (SECRET, "someone-else")])
def test_a_wrong_client_is_401_invalid_client(provider, secret, client):
    answer = redeem(provider, code(provider), secret=secret, client=client)
    assert answer.status == 401 and error(answer) == "invalid_client"


def test_no_client_authentication_is_401(provider):
    answer = redeem(provider, code(provider), secret=None)
    assert answer.status == 401 and error(answer) == "invalid_client"


def test_a_code_for_another_redirect_uri_is_refused_and_spent(provider):
    the_code = code(provider)
    assert error(redeem(provider, the_code, "https://shop-mr8-p42.review.example.com/oauth2/idpresponse")) == (
        "invalid_grant"
    )
    assert error(redeem(provider, the_code)) == "invalid_grant"  # a misused code is gone


def test_an_expired_or_unknown_code_is_invalid_grant(provider):
    the_code = code(provider)
    assert error(redeem(provider, "never-issued")) == "invalid_grant"
    assert error(redeem(provider, "x" * 5000)) == "invalid_grant"
    with time_machine.travel(time.time() + 61):
        assert error(redeem(provider, the_code)) == "invalid_grant"


@pytest.mark.parametrize("grant_type", ["client_credentials", "password", "refresh_token", "implicit", ""])
def test_only_the_authorization_code_grant(provider, grant_type):
    answer = token(provider, {"grant_type": grant_type, "code": code(provider), "redirect_uri": GOOD})
    assert answer.status == 400 and error(answer) in ("unsupported_grant_type", "invalid_request")


def test_a_token_request_without_a_code_is_invalid_request(provider):
    answer = token(provider, {"grant_type": "authorization_code", "redirect_uri": GOOD})
    assert answer.status == 400 and error(answer) == "invalid_request"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"client_id": "someone-else"}, "invalid_client"),
        ({"client_id": ""}, "invalid_client"),
        ({"redirect_uri": "https://evil.example.com/oauth2/idpresponse"}, "invalid_request"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"response_type": "code id_token"}, "unsupported_response_type"),
        ({"scope": "openid api"}, "invalid_scope"),
    ],
)
def test_authorization_requests_outside_the_rules_are_refused(provider, change, expected):
    with pytest.raises(OAuth2Error) as refused:
        authorize(provider, **change)
    assert refused.value.error == expected


def test_userinfo_needs_a_live_token_this_provider_issued(provider):
    import json

    tokens = json.loads(redeem(provider, code(provider)).body)
    for header in ("", "Bearer", "Bearer nope", f"Basic {tokens['access_token']}", "Bearer " + "x" * 500):
        assert provider.userinfo(header).status == 401, header
    with time_machine.travel(time.time() + 301):
        assert provider.userinfo(f"Bearer {tokens['access_token']}").status == 401


def test_the_client_never_shows_its_secret():
    client = LoadBalancer(CLIENT, SECRET, lambda uri: True)
    assert SECRET not in repr(client) and SECRET not in str(client)


def test_a_long_signing_input_goes_to_kms_as_its_digest():
    from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15

    message = b"x" * 5000
    signature = KEY.sign(message)
    KMS.private.public_key().verify(signature, message, PKCS1v15(), hashes.SHA256())  # raises if wrong
    short = b"header.payload"
    KMS.private.public_key().verify(KEY.sign(short), short, PKCS1v15(), hashes.SHA256())

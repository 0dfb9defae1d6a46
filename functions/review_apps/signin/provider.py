"""The install's own OpenID Connect provider, for one relying party: the load balancer.

The protocol is Authlib's (authorization-code grant, client authentication, the ID token through
its OpenID Connect extension); this module only supplies the storage hooks, the one client, and
the rule for redirect URIs (review_apps.lifecycle.access). ID tokens are RS256, signed by an RSA
key in KMS that nobody can export (adapters.signing_key); its public half is the JWKS, so any
relying party with default settings can verify them (OpenID Connect Discovery 1.0 §3).
"""

from __future__ import annotations

import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from authlib.common.security import generate_token
from authlib.oauth2.rfc6749 import AuthorizationServer, ClientMixin, OAuth2Request, grants
from authlib.oauth2.rfc6749.models import AuthorizationCodeMixin
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload
from authlib.oauth2.rfc6750 import BearerTokenGenerator
from authlib.oidc.core import UserInfo
from authlib.oidc.core.grants import OpenIDCode
from authlib.oidc.core.util import create_half_hash
from joserfc import jwt
from joserfc.jwk import RSAKey
from joserfc.jws import JWSAlgModel, JWSRegistry

from review_apps.adapters.signin_store import CODE, TOKEN, SignInStore
from review_apps.adapters.signing_key import ALGORITHM, KmsSigningKey

CODE_SECONDS = 60  # the load balancer redeems a code at once
ACCESS_TOKEN_SECONDS = 300  # it calls userinfo right after the token endpoint
ID_TOKEN_SECONDS = 300
SCOPES = ("openid", "profile")


@dataclass(frozen=True)
class User:
    """Who GitLab says signed in."""

    id: int
    username: str
    name: str

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "username": self.username, "name": self.name}

    @staticmethod
    def from_dict(data: dict[str, Any]) -> User:
        return User(int(data["id"]), str(data["username"]), str(data["name"]))

    def get_user_id(self) -> int:
        return self.id


@dataclass(frozen=True)
class LoadBalancer(ClientMixin):
    """A client: the ALB's authenticate-oidc action of one rule, with its secret (the install's
    generated one, or a host's derived from it). `redirect_ok` says whether a redirect URI is one
    this client may be sent back to."""

    client_id: str
    client_secret: str = field(repr=False)
    redirect_ok: Callable[[str], bool] = field(repr=False, compare=False)

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> None:
        return None  # the load balancer always names its own; there is no default to fall back to

    def get_allowed_scope(self, scope: str) -> str:
        return " ".join(s for s in (scope or "").split() if s in SCOPES)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return self.redirect_ok(redirect_uri)

    def check_client_secret(self, client_secret: str) -> bool:
        return hmac.compare_digest(str(client_secret).encode(), self.client_secret.encode())

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return endpoint == "token" and method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "authorization_code"


@dataclass(frozen=True)
class IssuedCode(AuthorizationCodeMixin):
    client_id: str
    redirect_uri: str
    scope: str
    nonce: str
    auth_time: int
    user: dict[str, Any]

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce or None

    def get_auth_time(self) -> int:
        return self.auth_time

    def get_acr(self) -> None:
        return None

    def get_amr(self) -> None:
        return None


class _CodeGrant(grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]
    server: Provider

    def save_authorization_code(self, code: str, request: OAuth2Request) -> None:
        data = {
            "client_id": request.client.get_client_id(),
            "redirect_uri": request.payload.redirect_uri,
            "scope": request.scope,
            "nonce": request.payload.data.get("nonce") or "",
            "auth_time": int(time.time()),
            "user": request.user.as_dict(),
        }
        self.server.store.put(CODE, code, data, CODE_SECONDS)

    def query_authorization_code(self, code: str, client: LoadBalancer) -> IssuedCode | None:
        # Taken, not read: a code works once, even when two redemptions race.
        data = self.server.store.take(CODE, code) if isinstance(code, str) and len(code) <= 200 else None
        if data is None or not hmac.compare_digest(str(data["client_id"]).encode(), client.client_id.encode()):
            return None
        return IssuedCode(**data)

    def delete_authorization_code(self, authorization_code: IssuedCode) -> None:
        """Already gone: query_authorization_code took it."""

    def authenticate_user(self, authorization_code: IssuedCode) -> User:
        return User.from_dict(authorization_code.user)


class _KmsRS256(JWSAlgModel):
    """RS256 for joserfc, with the signature made by KMS: joserfc still builds and encodes the
    token; only the one step that needs the private key happens where the key is."""

    name = ALGORITHM
    description = "RSASSA-PKCS1-v1_5 using SHA-256, signed by AWS KMS"
    key_type = "RSA"
    recommended = True

    def __init__(self, key: KmsSigningKey) -> None:
        self._key = key

    def check_key(self, key: Any) -> None:
        if key.key_type != "RSA":  # the public half, for its type: the private half is in KMS
            raise ValueError("RS256 needs the RSA key")

    def sign(self, msg: bytes, key: Any) -> bytes:
        return self._key.sign(msg)

    def verify(self, msg: bytes, sig: bytes, key: Any) -> bool:
        raise NotImplementedError("the provider signs; relying parties verify with the JWKS")


class _KmsRegistry(JWSRegistry):
    def __init__(self, key: KmsSigningKey) -> None:
        super().__init__(algorithms=[ALGORITHM])
        self.algorithms = {ALGORITHM: _KmsRS256(key)}


class _IdToken(OpenIDCode):
    DEFAULT_EXPIRES_IN = ID_TOKEN_SECONDS

    def __init__(self, issuer: str, key: KmsSigningKey) -> None:
        super().__init__(require_nonce=False)
        self._issuer = issuer
        self._key = key
        self._registry = _KmsRegistry(key)

    def exists_nonce(self, nonce: str, request: OAuth2Request) -> bool:
        return False  # codes are single-use; the nonce is the relying party's to check

    def resolve_client_private_key(self, client: LoadBalancer) -> RSAKey:
        return self._key.public_key  # what joserfc is handed; the signature is KMS's (_KmsRS256)

    def get_client_algorithm(self, client: LoadBalancer) -> str:
        return ALGORITHM

    def encode_id_token(self, token: dict[str, Any], request: OAuth2Request) -> str:
        """Authlib's encode_id_token, with the KMS registry and the key's id in the header."""
        claims = self.get_compatible_claims(request)
        if request.authorization_code:
            claims.update(self.get_authorization_code_claims(request.authorization_code))
        access_token = token.get("access_token")
        if access_token:
            claims["at_hash"] = create_half_hash(access_token, ALGORITHM).decode("utf-8")
        claims.update(self.generate_user_info(request.user, token["scope"]))
        header = {"alg": ALGORITHM, "kid": self._key.kid}
        return str(jwt.encode(header, claims, self._key.public_key, [ALGORITHM], registry=self._registry))

    def get_client_claims(self, client: LoadBalancer) -> dict[str, Any]:
        return {"iss": self._issuer, "aud": client.client_id, "exp": int(time.time()) + ID_TOKEN_SECONDS}

    def generate_user_info(self, user: User, scope: str) -> UserInfo:
        return user_info(user)


def user_info(user: User) -> UserInfo:
    return UserInfo(sub=str(user.id), preferred_username=user.username, name=user.name)


@dataclass
class Response:
    status: int
    body: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    cookies: list[str] = field(default_factory=list)


class _Request(OAuth2Request):
    """Authlib's view of one API Gateway request: the query string, or the form body."""

    def __init__(self, method: str, uri: str, params: dict[str, str], headers: dict[str, str]) -> None:
        super().__init__(method=method, uri=uri, headers=headers)
        self.payload = BasicOAuth2Payload(params)
        self._params = params

    @property
    def args(self) -> dict[str, str]:
        return self._params

    @property
    def form(self) -> dict[str, str]:
        return self._params


@dataclass(frozen=True)
class HttpRequest:
    """What the provider reads of a request: method, path, parameters (query or form), headers."""

    method: str
    uri: str
    params: dict[str, str]
    headers: dict[str, str]


class Provider(AuthorizationServer):
    def __init__(
        self, clients: Callable[[str], LoadBalancer | None], store: SignInStore, issuer: str, key: KmsSigningKey
    ) -> None:
        """`clients`: the client a client id names (the install's, for the catch-all rule, or a
        review host's own), or None."""
        super().__init__(scopes_supported=list(SCOPES))
        self.clients = clients
        self.store = store
        self.issuer = issuer
        self.key = key
        self.register_token_generator(
            "default", BearerTokenGenerator(lambda *a, **k: generate_token(42), None, ACCESS_TOKEN_SECONDS)
        )
        self.register_grant(_CodeGrant, [_IdToken(issuer, key)])

    # ------------------------------------------------------------------ Authlib's hooks

    def query_client(self, client_id: str) -> LoadBalancer | None:
        if not isinstance(client_id, str) or not 0 < len(client_id) <= 512:
            return None
        client = self.clients(client_id)
        if client is not None and hmac.compare_digest(client_id.encode(), client.client_id.encode()):
            return client
        return None

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        self.store.put(TOKEN, token["access_token"], request.user.as_dict(), ACCESS_TOKEN_SECONDS)

    def create_oauth2_request(self, request: HttpRequest | OAuth2Request) -> OAuth2Request:
        if isinstance(request, OAuth2Request):
            return request
        return _Request(request.method, request.uri, request.params, request.headers)

    def create_json_request(self, request: HttpRequest) -> OAuth2Request:
        return self.create_oauth2_request(request)

    def handle_response(self, status: int, body: Any, headers: list[tuple[str, str]]) -> Response:
        text = json.dumps(body) if isinstance(body, dict) else str(body or "")
        return Response(status, text, {**dict(headers), "Cache-Control": "no-store"})

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        """No listeners: the handler logs outcomes itself."""

    # ------------------------------------------------------------------ the endpoints' answers

    def discovery(self) -> dict[str, Any]:
        base = self.issuer
        return {
            "issuer": base,
            "authorization_endpoint": f"{base}/authorize",
            "token_endpoint": f"{base}/token",
            "userinfo_endpoint": f"{base}/userinfo",
            "jwks_uri": f"{base}/jwks",
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": [ALGORITHM],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "scopes_supported": list(SCOPES),
            "claims_supported": ["sub", "preferred_username", "name", "iss", "aud", "exp", "iat", "nonce"],
        }

    def userinfo(self, authorization: str) -> Response:
        """The user behind a Bearer access token this provider issued, or 401."""
        scheme, _, token = (authorization or "").partition(" ")
        data = self.store.get(TOKEN, token.strip()) if scheme.lower() == "bearer" and 0 < len(token) <= 200 else None
        if data is None:
            challenge = 'Bearer error="invalid_token", error_description="The access token is unknown or expired."'
            return Response(401, '{"error": "invalid_token"}', {"WWW-Authenticate": challenge})
        return Response(200, json.dumps(dict(user_info(User.from_dict(data)))), {"Cache-Control": "no-store"})

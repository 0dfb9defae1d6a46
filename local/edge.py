"""The install's edge on one HTTPS port of 127.0.0.1: the load balancer in front of review hosts,
and the HTTP API in front of AuthFunction. A browser (or `Edge.session()`) reaches every host name
on that port, as DNS would send it to the ALB or to API Gateway.

The load balancer does what an ALB's listener does with the rules moto holds: the first rule whose
host-header matches (by priority) runs its actions in order. `authenticate-oidc` sends a visitor
without a session to the rule's AuthorizationEndpoint, takes the code back on
`/oauth2/idpresponse`, calls the TokenEndpoint and UserInfoEndpoint itself (client secret, nonce
and ID token checked), and sets its session cookie for that host alone; a failure is the ALB's
bare `561`. `forward` to a Lambda target group invokes WakeFunction with the ALB's event; to an
`ip` target group it is the app itself, which here is a page naming the task it would be.
(moto returns a rule's ClientSecret in DescribeRules, which AWS never does; the stand-in uses it.)
"""

from __future__ import annotations

import datetime
import fnmatch
import ipaddress
import secrets
import ssl
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import jwt
import requests
from requests.adapters import HTTPAdapter

from local import events
from local.lambda_runtime import LambdaContext

SIGNIN_HOST = "signin.example.test"
WEBHOOK_HOST = "webhook.example.test"  # the webhook's HTTP API (WebhookUrl)
_ALB_EVENT_HEADERS = ("host", "user-agent", "accept", "cookie")


def _certificate(directory: Path, names: list[str]) -> tuple[str, str]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(n) for n in names] + [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "edge.crt", directory / "edge.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return str(cert_path), str(key_path)


class _ToEdge(HTTPAdapter):
    """Sends every https:// request to the edge's port, keeping its host name (for Host, cookies
    and redirects), as a browser with the edge's names in its resolver would."""

    def __init__(self, port: int) -> None:
        super().__init__()
        self.port = port

    def send(self, request: Any, **kwargs: Any) -> Any:
        parts = urlsplit(request.url)
        local = request.copy()
        local.url = urlunsplit(("https", f"127.0.0.1:{self.port}", parts.path, parts.query, ""))
        local.headers["Host"] = parts.hostname
        kwargs["verify"] = False
        response = super().send(local, **kwargs)
        response.url, response.request = request.url, request
        return response


class Edge:
    def __init__(self, world: Any, port: int = 0) -> None:
        self.world = world
        self.sessions: dict[str, dict[str, Any]] = {}  # the ALB's sessions, by cookie value
        self.pending: dict[str, dict[str, Any]] = {}  # the ALB's sign-ins under way, by state
        self.lock = threading.Lock()
        self.calls: list[str] = []  # every request the edge served: "<host> <path>"
        self.secrets_seen: list[str] = []  # codes and tokens the ALB handled (tests check no log shows them)
        self._dir = tempfile.TemporaryDirectory()
        cert, key = _certificate(Path(self._dir.name), [f"*.{world.review_domain}", SIGNIN_HOST])
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _EdgeHandler)
        self._server.daemon_threads = True
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._server.edge = self  # type: ignore[attr-defined]
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._dir.cleanup()

    def session(self) -> requests.Session:
        """A client whose https:// requests all reach this edge (a fresh browser: no cookies)."""
        import urllib3

        urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
        client = requests.Session()
        client.mount("https://", _ToEdge(self.port))
        return client

    # ------------------------------------------------------------------ the HTTP API (AuthFunction)

    def api(self, method: str, host: str, path: str, query: str, headers: dict[str, str], body: bytes) -> tuple:
        cookies = [c.strip() for c in headers.get("cookie", "").split(";") if c.strip()]
        event = {
            "version": "2.0",
            "routeKey": "ANY /auth/{step+}",
            "rawPath": path,
            "rawQueryString": query,
            "cookies": cookies,
            "headers": {k: v for k, v in headers.items() if k != "cookie"},
            "requestContext": {"domainName": host, "http": {"method": method, "path": path}},
            "body": body.decode("utf-8", "replace") if body else None,
            "isBase64Encoded": False,
        }
        answer = self.world.auth_handler(event, LambdaContext(function_name="AuthFunction"))
        out = dict(answer.get("headers") or {})
        return answer["statusCode"], out, answer.get("cookies") or [], (answer.get("body") or "").encode()

    def webhook(self, headers: dict[str, str], body: bytes) -> tuple:
        event = events.api_event(body.decode("utf-8", "replace"), headers.get("x-gitlab-event", ""), "")
        event["headers"] = {k: v for k, v in headers.items() if k != "host"}  # exactly what was sent
        answer = self.world.webhook_handler(event, LambdaContext(function_name="WebhookFunction"))
        return answer["statusCode"], dict(answer.get("headers") or {}), [], (answer.get("body") or "").encode()

    # ------------------------------------------------------------------ the load balancer

    def _rule_for(self, host: str) -> dict[str, Any] | None:
        rules = sorted(self.world.rules(catch_all=True), key=lambda r: int(r["Priority"]))
        for rule in rules:
            for condition in rule["Conditions"]:
                values = condition.get("HostHeaderConfig", {}).get("Values", condition.get("Values", []))
                if condition["Field"] == "host-header" and any(fnmatch.fnmatch(host, v.lower()) for v in values):
                    return rule
        return None

    def alb(self, method: str, host: str, path: str, query: str, headers: dict[str, str]) -> tuple:
        rule = self._rule_for(host)
        if rule is None:
            return 404, {"Content-Type": "text/plain"}, [], b"No review app here"
        identity: dict[str, Any] = {}
        for action in sorted(rule["Actions"], key=lambda a: a.get("Order", 0)):
            if action["Type"] == "authenticate-oidc":
                config = action["AuthenticateOidcConfig"]
                signed_in = self._authenticate(config, host, path, query, headers)
                if not isinstance(signed_in, dict):
                    return signed_in
                identity = signed_in
            elif action["Type"] == "forward":
                return self._forward(action["TargetGroupArn"], method, host, path, headers, identity)
        return 500, {"Content-Type": "text/plain"}, [], b"rule without a forward"

    def _authenticate(self, config: dict, host: str, path: str, query: str, headers: dict[str, str]) -> Any:
        name = config["SessionCookieName"]
        jar = dict(c.strip().partition("=")[::2] for c in headers.get("cookie", "").split(";") if "=" in c)
        with self.lock:
            session = self.sessions.get(jar.get(f"{name}-0", ""))
        if session and session["host"] == host and session["expires"] > time.time():
            return session["claims"]
        if path == "/oauth2/idpresponse":
            return self._idpresponse(config, host, dict(parse_qsl(query)), name)
        state, nonce = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        with self.lock:
            self.pending[state] = {
                "host": host,
                "nonce": nonce,
                "back": f"https://{host}{path}" + (f"?{query}" if query else ""),
            }
        params = {
            "client_id": config["ClientId"],
            "redirect_uri": f"https://{host}/oauth2/idpresponse",
            "response_type": "code",
            "scope": config["Scope"],
            "state": state,
            "nonce": nonce,
        }
        return (
            302,
            {"Location": f"{config['AuthorizationEndpoint']}?{urlencode(params)}", "Cache-Control": "no-store"},
            [],
            b"",
        )

    def _idpresponse(self, config: dict, host: str, params: dict[str, str], name: str) -> Any:
        failed = (
            561,
            {"Content-Type": "text/html"},
            [],
            b"<html><body><h1>561 Authorization Required</h1></body></html>",
        )
        with self.lock:
            pending = self.pending.pop(params.get("state", ""), None)
        if pending is None or pending["host"] != host or "code" not in params:
            return failed
        client = self.session()
        token = client.post(
            config["TokenEndpoint"],
            auth=(config["ClientId"], config["ClientSecret"]),
            data={
                "grant_type": "authorization_code",
                "code": params["code"],
                "redirect_uri": f"https://{host}/oauth2/idpresponse",
            },
            timeout=10,
        )
        if token.status_code != 200:
            return failed
        tokens = token.json()
        self.secrets_seen += [params["code"], tokens.get("access_token", ""), tokens.get("id_token", "")]
        try:
            # As a relying party with PyJWT's defaults: the provider's key from its JWKS, by kid.
            keys = jwt.PyJWKSet.from_dict(client.get(f"{config['Issuer']}/jwks", timeout=10).json())
            kid = jwt.get_unverified_header(tokens["id_token"]).get("kid")
            key = next(k for k in keys.keys if k.key_id == kid)
            claims = jwt.decode(
                tokens["id_token"],
                key,
                algorithms=["RS256"],
                audience=config["ClientId"],
                issuer=config["Issuer"],
            )
        except (jwt.InvalidTokenError, jwt.PyJWKSetError, KeyError, StopIteration, ValueError):
            return failed
        if claims.get("nonce") != pending["nonce"]:
            return failed
        info = client.get(
            config["UserInfoEndpoint"], headers={"Authorization": f"Bearer {tokens['access_token']}"}, timeout=10
        )
        if info.status_code != 200 or info.json().get("sub") != claims["sub"]:
            return failed
        cookie = secrets.token_urlsafe(32)
        with self.lock:
            self.sessions[cookie] = {
                "host": host,
                "claims": info.json(),
                "expires": time.time() + int(config["SessionTimeout"]),
            }
        set_cookie = f"{name}-0={cookie}; Path=/; Secure; HttpOnly; SameSite=Lax"
        return 302, {"Location": pending["back"], "Cache-Control": "no-store"}, [set_cookie], b""

    def _forward(
        self, target_group: str, method: str, host: str, path: str, headers: dict[str, str], identity: dict[str, Any]
    ) -> tuple:
        [group] = self.world.elbv2.describe_target_groups(TargetGroupArns=[target_group])["TargetGroups"]
        if group["TargetType"] == "lambda":
            event = events.alb_request(host, path, method)
            event["headers"].update({k: v for k, v in headers.items() if k in _ALB_EVENT_HEADERS})
            if identity:
                event["headers"]["x-amzn-oidc-identity"] = identity["sub"]
            answer = self.world.wake_handler(event, LambdaContext(function_name="WakeFunction"))
            return answer["statusCode"], dict(answer.get("headers") or {}), [], answer["body"].encode()
        targets = self.world.targets(target_group)
        if not targets:
            return 503, {"Content-Type": "text/html"}, [], b"<html><body><h1>503 Service Temporarily Unavailable</h1>"
        who = f" for @{identity['preferred_username']}" if identity else ""
        page = (
            f"<!doctype html><title>{host}</title><h1 id='app'>The review app at {host}</h1>"
            f"<p>Served by the task at {targets[0]}{who}.</p>"
        )
        return 200, {"Content-Type": "text/html; charset=utf-8"}, [], page.encode()


class _EdgeHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _serve(self, method: str) -> None:
        edge: Edge = self.server.edge  # type: ignore[attr-defined]
        host = (self.headers.get("Host") or "").split(":")[0].lower()
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        edge.calls.append(f"{host} {parts.path}")
        try:
            if host == WEBHOOK_HOST and (method, parts.path) == ("POST", "/webhook"):
                status, out, cookies, payload = edge.webhook(headers, body)
            elif host == SIGNIN_HOST and parts.path.startswith("/auth/"):
                status, out, cookies, payload = edge.api(method, host, parts.path, parts.query, headers, body)
            elif host.endswith("." + edge.world.review_domain):
                status, out, cookies, payload = edge.alb(method, host, parts.path, parts.query, headers)
            else:
                status, out, cookies, payload = 404, {"Content-Type": "text/plain"}, [], b"unknown host"
        except Exception as exc:  # a stand-in's own bug: say so, like a 500 from the real thing
            status, out, cookies, payload = 500, {"Content-Type": "text/plain"}, [], repr(exc).encode()
        self.send_response(status)
        for name, value in out.items():
            if name.lower() != "content-length":
                self.send_header(name, value)
        for cookie in cookies:
            self.send_header("Set-Cookie", cookie)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")


def sign_in_at_gitlab(client: requests.Session, page: requests.Response, username: str, password: str) -> Any:
    """Fill in the GitLab sign-in form `page` shows, as a person would, and follow where it leads."""
    import html
    import re

    found = re.search(r'name="return_to" value="([^"]*)"', page.text)
    if found is None or "/users/sign_in" not in page.url:
        raise AssertionError(f"not GitLab's sign-in form: {page.url}")
    base = page.url.split("/users/sign_in")[0]
    return client.post(
        f"{base}/users/sign_in",
        timeout=20,
        data={"username": username, "password": password, "return_to": html.unescape(found.group(1))},
    )

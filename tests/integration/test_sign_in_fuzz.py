"""Nothing at the sign-in door answers 5xx, and nothing redirects off the rule: generated requests
(Hypothesis) to every endpoint of the real AuthFunction, against moto and the GitLab stand-in,
with one live review app to aim at."""

from __future__ import annotations

import base64
from urllib.parse import quote, urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from local.lambda_runtime import LambdaContext
from local.world import ALB_CLIENT, PROJECT_ID, SIGNIN_ISSUER, World

EXAMPLES = int(__import__("os").environ.get("FUZZ_EXAMPLES", "1000"))
DOMAIN = urlsplit(SIGNIN_ISSUER).hostname
STEPS = {
    "discovery": ("GET", "/auth/.well-known/openid-configuration"),
    "jwks": ("GET", "/auth/jwks"),
    "authorize": ("GET", "/auth/authorize"),
    "callback": ("GET", "/auth/callback"),
    "token": ("POST", "/auth/token"),
    "userinfo": ("GET", "/auth/userinfo"),
}
NASTY = st.sampled_from(
    ["", "\\", '"', "\n", "\r\n", "é", "\u202e", "\x00", "%", "%zz", "=", "&", ";", "//", "../", "\u200b", " "]
)
TEXT = st.one_of(st.text(max_size=40), NASTY, st.text(alphabet='\\"\n é%&=;', max_size=12))


@pytest.fixture(scope="module")
def door(moto_server, gitlab_server):
    """One install with one live app (module-wide: the fuzzer sends thousands of requests)."""
    import os

    saved = dict(os.environ)
    world = World(moto_server, gitlab_server, alb=True).install()
    sha = "1" * 40
    world.commit(sha)
    world.open_mr(1, sha, branch="feature/1")
    world.pipeline(1)
    world.task_event(world.record(1)["task_arn"], "RUNNING")
    host = world.record(1)["host"]
    handler = world.load_auth_handler()
    yield world, handler, host
    world.close()
    os.environ.clear()
    os.environ.update(saved)


def event(method: str, path: str, query: str = "", body: str = "", headers=None, cookies=None, b64=False) -> dict:
    return {
        "version": "2.0",
        "rawPath": path,
        "rawQueryString": query,
        "cookies": cookies or [],
        "headers": {"host": DOMAIN, **(headers or {})},
        "requestContext": {"domainName": DOMAIN, "http": {"method": method, "path": path}},
        "body": base64.b64encode(body.encode()).decode() if b64 else body,
        "isBase64Encoded": b64,
    }


def params(host: str):
    """Mostly plausible parameters, each of them sometimes hostile, plus junk ones."""
    good = {
        "client_id": ALB_CLIENT["client_id"],
        "redirect_uri": f"https://{host}/oauth2/idpresponse",
        "response_type": "code",
        "scope": "openid",
        "state": "s",
        "nonce": "n",
        "code": "c",
        "grant_type": "authorization_code",
    }
    keys = st.sampled_from(sorted(good))
    pairs = st.lists(
        st.tuples(keys | st.text(max_size=12), st.one_of(st.sampled_from(list(good.values())), TEXT)), max_size=40
    )
    return pairs.map(lambda extra: [*good.items(), *extra] if len(extra) % 3 else extra)


def encode(pairs) -> str:
    return "&".join(f"{quote(str(k), safe='')}={quote(str(v), safe='')}" for k, v in pairs)


@pytest.mark.parametrize("step", sorted(STEPS))
def test_no_generated_request_gets_a_5xx_or_an_outside_redirect(door, step, tally):
    world, handler, host = door
    method, path = STEPS[step]
    seen = {"count": 0}

    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(
        pairs=params(host),
        raw=st.booleans(),
        junk=TEXT,
        authorization=st.one_of(
            st.none(),
            st.just("Basic //79"),
            st.just("Basic " + base64.b64encode(b"a:b").decode()),
            TEXT.map(lambda t: "Bearer " + t),
            TEXT.map(lambda t: "Basic " + t),
        ),
        cookies=st.lists(st.tuples(st.sampled_from(["__Host-review_apps_session", "review_apps_session", "x"]), TEXT)),
        b64=st.booleans(),
    )
    def one(pairs, raw, junk, authorization, cookies, b64):
        text = junk if raw else encode(pairs)
        headers = {"authorization": authorization} if authorization is not None else {}
        jar = [f"{k}={v}" for k, v in cookies]
        if method == "POST":
            request = event(method, path, body=text, headers=headers, cookies=jar, b64=b64)
        else:
            request = event(method, path, query=text, headers=headers, cookies=jar)
        answer = handler(request, LambdaContext(function_name="AuthFunction"))
        assert answer["statusCode"] < 500, (step, request, answer)
        location = (answer.get("headers") or {}).get("Location", "")
        if location:
            target = urlsplit(location).hostname
            assert target in (host, urlsplit(world.gitlab.url).hostname), location
        seen["count"] += 1

    one()
    assert seen["count"] >= EXAMPLES
    tally[f"sign-in requests fuzzed ({step})"] += seen["count"]
    assert world.record(1)["project_id"] == PROJECT_ID

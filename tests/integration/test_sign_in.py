"""Only the project's members open its review apps: a browser (requests, through the local edge:
the ALB stand-in and the HTTP API in front of the real AuthFunction) signs in with the GitLab
stand-in, and the real handlers decide, against moto."""

from __future__ import annotations

import json
import time
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import jwt
import pytest
import requests
import time_machine

from local.edge import SIGNIN_HOST, sign_in_at_gitlab
from local.world import ALB_CLIENT, PEOPLE, PROJECT_ID, SIGNIN_ISSUER, SIGNIN_TABLE

AUTHORIZE = f"{SIGNIN_ISSUER}/authorize"
TOKEN = f"{SIGNIN_ISSUER}/token"


def live_app(world, iid: int) -> str:
    sha = f"{iid:040x}"
    world.commit(sha)
    world.open_mr(iid, sha, branch=f"feature/{iid}")
    world.pipeline(iid)
    task = next(t for t in world.tasks() if t["group"] == f"review-app:{PROJECT_ID}:{iid}")
    world.task_event(task["taskArn"], "RUNNING")
    return world.record(iid)["host"]


def open_as(world, browser: requests.Session, host: str, username: str | None) -> requests.Response:
    """Open https://<host>/ and, if GitLab asks, sign in as `username`."""
    page = browser.get(f"https://{host}/", timeout=20)
    if "/users/sign_in" in page.url and username:
        page = sign_in_at_gitlab(browser, page, username, PEOPLE[username][2])
    return page


def through_gitlab(page: requests.Response) -> bool:
    return any("/oauth/authorize" in r.url or "/users/sign_in" in r.url for r in [*page.history, page])


@pytest.fixture
def signin_world(alb_world):
    return alb_world


def test_a_member_signs_in_once_and_opens_two_apps(signin_world):
    world = signin_world
    first, second = live_app(world, 1), live_app(world, 2)
    browser = world.edge().session()
    page = open_as(world, browser, first, "dana")
    assert page.status_code == 200 and page.url == f"https://{first}/"
    assert f"The review app at {first}" in page.text and "for @dana" in page.text
    again = browser.get(f"https://{first}/checkout", timeout=20)  # the ALB's session: no sign-in at all
    assert again.status_code == 200 and not again.history
    other = browser.get(f"https://{second}/", timeout=20)
    assert other.status_code == 200 and f"The review app at {second}" in other.text
    assert not through_gitlab(other)  # the provider's session: GitLab was not asked again
    assert any(r.url.startswith(AUTHORIZE) for r in other.history)  # …but the provider was (membership)


@pytest.mark.parametrize(
    ("username", "says"),
    [
        (
            "mallory",
            "Only members of this review app&#x27;s project with Reporter access or more can open it. Ask the "
            "project&#x27;s maintainers for Reporter access or more",
        ),
        ("gus", "Your access to this review app&#x27;s project is Guest; review apps need Reporter or more."),
    ],
)
def test_anyone_else_gets_a_page_that_says_why_and_what_to_ask_for(signin_world, username, says):
    host = live_app(signin_world, 1)
    page = open_as(signin_world, signin_world.edge().session(), host, username)
    assert page.status_code == 403 and urlsplit(page.url).hostname == SIGNIN_HOST
    assert "You can&#x27;t open this review app" in page.text and says in page.text
    assert f"signed in to GitLab as @{username}" in page.text
    assert "awesome" not in page.text and "!1" not in page.text  # no project, no MR named to a stranger
    assert "Served by the task" not in page.text


def test_membership_is_checked_again_for_every_host(signin_world):
    world = signin_world
    first, second = live_app(world, 1), live_app(world, 2)
    browser = world.edge().session()
    assert open_as(world, browser, first, "rita").status_code == 200
    del world.gitlab.state.projects[PROJECT_ID].members[PEOPLE["rita"][0]]  # removed from the project
    page = browser.get(f"https://{second}/", timeout=20)
    assert page.status_code == 200  # GitLab's answer is remembered for a minute (README)
    with time_machine.travel(time.time() + 61, tick=True):
        third = live_app(world, 3)
        page = browser.get(f"https://{third}/", timeout=20)
    assert page.status_code == 403 and "Only members of this review app" in page.text
    assert not through_gitlab(page)


def test_a_higher_minimum_level_refuses_a_reporter(make_world):
    world = make_world(alb=True, REVIEW_APP_MIN_ACCESS_LEVEL="30")
    host = live_app(world, 1)
    page = open_as(world, world.edge().session(), host, "rita")
    assert page.status_code == 403 and "review apps need Developer or more" in page.text
    assert open_as(world, world.edge().session(), host, "dana").status_code == 200


def test_a_blocked_member_never_gets_in(signin_world):
    world = signin_world
    host = live_app(world, 1)
    browser = world.edge().session()
    assert open_as(world, browser, host, "dana").status_code == 200
    world.gitlab.state.users[PEOPLE["dana"][0]]["state"] = "blocked"
    with time_machine.travel(time.time() + 61, tick=True):  # past the remembered answer
        second = live_app(world, 2)
        page = browser.get(f"https://{second}/", timeout=20)
    assert page.status_code == 403 and "Your GitLab account is blocked" in page.text


# ---------------------------------------------------------------------- the authorization endpoint


def authorize(world, redirect_uri: str, **extra: str) -> requests.Response:
    params = {
        "client_id": ALB_CLIENT["client_id"],
        "redirect_uri": redirect_uri,
        "response_type": "code",
        "scope": "openid",
        "state": "alb-state",
        "nonce": "n-1",
        **extra,
    }
    return world.edge().session().get(f"{AUTHORIZE}?{urlencode(params)}", allow_redirects=False, timeout=20)


@pytest.mark.parametrize(
    "redirect",
    [
        "https://evil.example.com/oauth2/idpresponse",
        "http://{host}/oauth2/idpresponse",
        "https://{host}/elsewhere",
        "https://{host}:8443/oauth2/idpresponse",
        "https://someone@{host}/oauth2/idpresponse",
        "https://{host}.evil.com/oauth2/idpresponse",
        "https://awesome-project-mr99-p14.review.example.test/oauth2/idpresponse",  # no such MR
        "https://other-mr1-p14.review.example.test/oauth2/idpresponse",  # MR 1, but not its host
    ],
)
def test_no_redirect_outside_this_installs_live_review_hosts(signin_world, redirect):
    host = live_app(signin_world, 1)
    answer = authorize(signin_world, redirect.format(host=host))
    assert answer.status_code == 400 and "Location" not in answer.headers
    assert "This sign-in request is not valid" in answer.text
    assert "review app of this install" in answer.text


def test_a_closed_mrs_host_gets_no_redirect(signin_world):
    world = signin_world
    host = live_app(world, 1)
    assert authorize(world, f"https://{host}/oauth2/idpresponse").status_code == 302
    task_arn = world.record(1)["task_arn"]
    world.send_mr(1, "close")
    world.task_event(task_arn, "STOPPED", exit_codes={"web": 143}, stop_code="UserInitiated")
    answer = authorize(world, f"https://{host}/oauth2/idpresponse")
    assert answer.status_code == 400 and "Location" not in answer.headers


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"client_id": "someone-else"}, "does not come from this install&#x27;s load balancer"),
        ({"response_type": "token"}, "something other than a sign-in code"),
        ({"scope": "openid api"}, "asks for more than this install gives"),
    ],
)
def test_other_bad_authorization_requests_get_a_page_not_a_redirect(signin_world, change, says):
    host = live_app(signin_world, 1)
    answer = authorize(signin_world, f"https://{host}/oauth2/idpresponse", **change)
    assert answer.status_code == 400 and "Location" not in answer.headers and says in answer.text


def test_a_repeated_parameter_is_refused(signin_world):
    host = live_app(signin_world, 1)
    query = urlencode(
        [
            ("client_id", ALB_CLIENT["client_id"]),
            ("redirect_uri", f"https://{host}/oauth2/idpresponse"),
            ("redirect_uri", "https://evil.example.com/oauth2/idpresponse"),
            ("response_type", "code"),
        ]
    )
    answer = signin_world.edge().session().get(f"{AUTHORIZE}?{query}", allow_redirects=False, timeout=20)
    assert answer.status_code == 400 and "Location" not in answer.headers


def test_the_way_to_gitlab_carries_our_own_state_and_pkce(signin_world):
    host = live_app(signin_world, 1)
    answer = authorize(signin_world, f"https://{host}/oauth2/idpresponse")
    location = urlsplit(answer.headers["Location"])
    params = {k: v[0] for k, v in parse_qs(location.query).items()}
    assert location.path == "/oauth/authorize" and params["code_challenge_method"] == "S256"
    assert params["redirect_uri"] == f"{SIGNIN_ISSUER}/callback" and params["scope"] == "openid"
    assert params["state"] != "alb-state" and len(params["state"]) >= 32
    cookie = answer.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "Secure" in cookie and "SameSite=Lax" in cookie and params["state"] in cookie
    assert cookie.startswith("__Host-review_apps_signin_") and "Path=/;" in cookie and "Domain" not in cookie


def test_two_session_cookies_of_one_name_are_no_session(signin_world):
    """A session planted beside the real one (login CSRF, or a victim locked out) must not win."""
    world = signin_world
    host = live_app(world, 1)
    browser = world.edge().session()
    assert open_as(world, browser, host, "dana").status_code == 200
    session = browser.cookies.get("__Host-review_apps_session", domain=SIGNIN_HOST)
    assert session
    params = {
        "client_id": ALB_CLIENT["client_id"],
        "redirect_uri": f"https://{host}/oauth2/idpresponse",
        "response_type": "code",
        "scope": "openid",
        "state": "s",
        "nonce": "n",
    }
    cookies = f"__Host-review_apps_session=planted; __Host-review_apps_session={session}"
    fresh = world.edge().session()
    answer = fresh.get(f"{AUTHORIZE}?{urlencode(params)}", headers={"Cookie": cookies}, allow_redirects=False)
    assert answer.status_code == 302 and "/oauth/authorize" in answer.headers["Location"]  # to GitLab: no session


def test_a_callback_from_another_browser_or_replayed_is_refused(signin_world):
    world = signin_world
    host = live_app(world, 1)
    starter = world.edge().session()
    at_gitlab = starter.get(f"https://{host}/", timeout=20)
    # The person signs in, but the way back is opened in another browser (no binding cookie).
    signed = starter.post(
        at_gitlab.url.split("/users/sign_in")[0] + "/users/sign_in",
        allow_redirects=False,
        timeout=20,
        data={
            "username": "dana",
            "password": PEOPLE["dana"][2],
            "return_to": parse_qs(urlsplit(at_gitlab.url).query)["return_to"][0],
        },
    )
    at_authorize = urljoin(at_gitlab.url, signed.headers["Location"])
    to_callback = starter.get(at_authorize, allow_redirects=False, timeout=20).headers["Location"]
    stranger = world.edge().session().get(to_callback, allow_redirects=False, timeout=20)
    assert stranger.status_code == 400 and "started in another browser" in stranger.text
    first = starter.get(to_callback, allow_redirects=False, timeout=20)
    assert first.status_code == 302 and first.headers["Location"].startswith(f"https://{host}/oauth2/idpresponse?")
    replay = starter.get(to_callback, allow_redirects=False, timeout=20)
    assert replay.status_code == 400 and "Location" not in replay.headers


# ---------------------------------------------------------------------- token and userinfo


def code_for(world, username: str = "dana") -> tuple[str, str]:
    """A code the provider issued for the ALB, as the ALB would receive it (not redeemed)."""
    host = live_app(world, 1)
    browser = world.edge().session()
    page = open_as(world, browser, host, username)  # signs in: the provider has a session now
    assert page.status_code == 200
    answer = authorize(world, f"https://{host}/oauth2/idpresponse")  # a fresh browser would be sent to GitLab…
    session_cookie = browser.cookies.get("__Host-review_apps_session", domain=SIGNIN_HOST)
    params = {
        "client_id": ALB_CLIENT["client_id"],
        "redirect_uri": f"https://{host}/oauth2/idpresponse",
        "response_type": "code",
        "scope": "openid",
        "state": "s",
        "nonce": "nonce-42",
    }
    answer = browser.get(f"{AUTHORIZE}?{urlencode(params)}", allow_redirects=False, timeout=20)  # …this one isn't
    assert session_cookie and answer.status_code == 302
    location = urlsplit(answer.headers["Location"])
    return parse_qs(location.query)["code"][0], f"https://{host}/oauth2/idpresponse"


def redeem(world, code: str, redirect_uri: str, secret: str = ALB_CLIENT["client_secret"], basic: bool = True):
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
    auth = (ALB_CLIENT["client_id"], secret) if basic else None
    if not basic:
        data.update(client_id=ALB_CLIENT["client_id"], client_secret=secret)
    return world.edge().session().post(TOKEN, data=data, auth=auth, timeout=20)


def test_a_code_gives_a_signed_id_token_and_userinfo_once(signin_world):
    world = signin_world
    code, redirect = code_for(world)
    answer = redeem(world, code, redirect)
    assert answer.status_code == 200 and answer.headers["Cache-Control"] == "no-store"
    tokens = answer.json()
    # PyJWT (not the library the provider is built on), with its defaults, from the published JWKS.
    jwks = world.edge().session().get(f"{SIGNIN_ISSUER}/jwks", timeout=20).json()
    [key] = jwt.PyJWKSet.from_dict(jwks).keys
    assert key.key_id == jwt.get_unverified_header(tokens["id_token"])["kid"] and key.algorithm_name == "RS256"
    claims = jwt.decode(
        tokens["id_token"], key, algorithms=["RS256"], audience=ALB_CLIENT["client_id"], issuer=SIGNIN_ISSUER
    )
    assert claims["sub"] == str(PEOPLE["dana"][0]) and claims["nonce"] == "nonce-42"
    assert 0 < claims["exp"] - time.time() <= 300
    info = (
        world.edge()
        .session()
        .get(f"{SIGNIN_ISSUER}/userinfo", timeout=20, headers={"Authorization": f"Bearer {tokens['access_token']}"})
    )
    assert info.json() == {"sub": "61", "preferred_username": "dana", "name": "Dana Developer"}
    assert redeem(world, code, redirect).json()["error"] == "invalid_grant"  # replayed


def test_client_secret_post_works_too(signin_world):
    code, redirect = code_for(signin_world)
    assert redeem(signin_world, code, redirect, basic=False).status_code == 200


def test_a_wrong_secret_is_invalid_client(signin_world):
    code, redirect = code_for(signin_world)
    answer = redeem(signin_world, code, redirect, secret="not-the-secret")
    assert answer.status_code == 401 and answer.json()["error"] == "invalid_client"
    assert redeem(signin_world, code, redirect).status_code == 200  # the code was not spent on it


def test_a_code_for_another_redirect_uri_is_invalid_grant(signin_world):
    code, redirect = code_for(signin_world)
    other = redirect.replace("mr1", "mr2")
    assert redeem(signin_world, code, other).json()["error"] == "invalid_grant"


def test_an_unknown_or_expired_code_is_invalid_grant(signin_world):
    code, redirect = code_for(signin_world)
    assert redeem(signin_world, "made-up-code", redirect).json()["error"] == "invalid_grant"
    with time_machine.travel(time.time() + 61):
        assert redeem(signin_world, code, redirect).json()["error"] == "invalid_grant"


def test_userinfo_without_a_valid_token_is_401(signin_world):
    live_app(signin_world, 1)
    for header in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic abc"}):
        answer = signin_world.edge().session().get(f"{SIGNIN_ISSUER}/userinfo", headers=header, timeout=20)
        assert answer.status_code == 401 and "invalid_token" in answer.headers["WWW-Authenticate"]


def test_discovery_names_the_endpoints(signin_world):
    doc = signin_world.edge().session().get(f"{SIGNIN_ISSUER}/.well-known/openid-configuration", timeout=20).json()
    assert doc["issuer"] == SIGNIN_ISSUER
    assert [doc[k] for k in ("authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri")] == [
        f"{SIGNIN_ISSUER}/{p}" for p in ("authorize", "token", "userinfo", "jwks")
    ]
    # Every member OpenID Connect Discovery 1.0 §3 REQUIRES, and RS256 among the algorithms.
    for member in (
        "issuer",
        "authorization_endpoint",
        "token_endpoint",
        "jwks_uri",
        "response_types_supported",
        "subject_types_supported",
        "id_token_signing_alg_values_supported",
    ):
        assert doc[member], member
    assert "RS256" in doc["id_token_signing_alg_values_supported"]


# ---------------------------------------------------------------------- rules, waking, opting out


def test_every_rule_signs_in_before_it_forwards(signin_world):
    world = signin_world
    host = live_app(world, 1)
    actions = world.route(host)["rule"]["Actions"]
    assert [(a["Type"], a["Order"]) for a in actions] == [("authenticate-oidc", 1), ("forward", 2)]
    config = actions[0]["AuthenticateOidcConfig"]
    assert config["Issuer"] == SIGNIN_ISSUER and config["OnUnauthenticatedRequest"] == "authenticate"
    # The host's own client, derived from the install's: not the catch-all's, not another host's.
    assert config["ClientId"] == f"{ALB_CLIENT['client_id']}.{host}" and config["SessionTimeout"] == 3600
    assert config["ClientSecret"] not in (ALB_CLIENT["client_secret"], "") and len(config["ClientSecret"]) == 64
    assert ALB_CLIENT["client_secret"] not in (world.note(1) or "")
    assert "Only members of awesome_space/awesome_project (Reporter or above) can open it" in world.note(1)


def test_a_sleeping_app_wakes_only_for_a_member(make_world):
    world = make_world(alb=True, DEFAULT_SLEEP_AFTER="15m")
    host = live_app(world, 1)
    world.live_for(1, 60)
    world.reconcile()
    assert world.record(1)["status"] in ("stopping", "asleep")
    # Its own rule is gone: the stack's catch-all sends the host to the wake function, signing in first.
    assert world.route(host) is None
    [catch_all] = world.rules(catch_all=True)
    assert [a["Type"] for a in catch_all["Actions"]] == ["authenticate-oidc", "forward"]
    world.task_event(world.record(1)["task_arn"], "STOPPED", exit_codes={"web": 143}, stop_code="UserInitiated")
    stranger = world.edge().session().get(f"https://{host}/", timeout=20)
    assert "/users/sign_in" in stranger.url and world.tasks() == []  # nothing woke
    outsider = world.edge().session()
    refused = sign_in_at_gitlab(outsider, outsider.get(f"https://{host}/", timeout=20), "mallory", PEOPLE["mallory"][2])
    assert refused.status_code == 403 and world.tasks() == []
    member = open_as(world, world.edge().session(), host, "dana")
    assert member.status_code == 503 and "Waking up the review app for !1" in member.text
    assert len(world.tasks()) == 1


def test_public_access_has_no_sign_in(make_world):
    world = make_world(alb=True, REVIEW_APP_ACCESS="public")
    host = live_app(world, 1)
    assert [a["Type"] for a in world.route(host)["rule"]["Actions"]] == ["forward"]
    page = world.edge().session().get(f"https://{host}/", timeout=20)
    assert page.status_code == 200 and not page.history
    assert "Anyone with the address can open it" in world.note(1)


@pytest.mark.parametrize(
    ("sample", "status", "says"),
    [
        ("auth_discovery.json", 200, '"issuer": "https://abc123def4.execute-api.eu-west-1.amazonaws.com/auth"'),
        ("auth_authorize.json", 400, "This sign-in request is not valid"),  # no such app in this install
        ("auth_callback.json", 400, "This sign-in has expired or was already used."),
        ("auth_token.json", 401, '"error": "invalid_client"'),
        ("auth_userinfo.json", 401, '"error": "invalid_token"'),
    ],
)
def test_every_auth_sample_gets_a_clear_answer(signin_world, sample, status, says):
    """The events/ samples, as `sam local invoke AuthFunction -e events/<sample>` sends them."""
    from local.events import load_sample
    from local.lambda_runtime import LambdaContext

    answer = signin_world.auth_handler(load_sample(sample), LambdaContext(function_name="AuthFunction"))
    assert answer["statusCode"] == status and says in answer["body"]


def test_turning_sign_in_on_secures_the_rules_of_apps_already_running(make_world):
    world = make_world(alb=True, REVIEW_APP_ACCESS="public")
    host = live_app(world, 1)
    assert [a["Type"] for a in world.route(host)["rule"]["Actions"]] == ["forward"]
    world.redeploy(REVIEW_APP_ACCESS="members")  # the operator changes ReviewAppAccess
    summary = world.reconcile()
    assert summary["rules_resigned"] == 1
    route = world.route(host)
    assert [a["Type"] for a in route["rule"]["Actions"]] == ["authenticate-oidc", "forward"]
    assert route["target_group"] == world.record(1)["target_group_arn"]  # still forwards to the app
    assert "/users/sign_in" in world.edge().session().get(f"https://{host}/", timeout=20).url
    assert "rules_resigned" not in world.reconcile()  # once is enough
    world.redeploy(REVIEW_APP_ACCESS="public")  # and back
    assert world.reconcile()["rules_resigned"] == 1
    assert [a["Type"] for a in world.route(host)["rule"]["Actions"]] == ["forward"]


def test_no_secret_code_or_token_of_a_sign_in_reaches_a_log_line_or_a_note(make_world, capfd):
    import io
    import logging

    from local.world import OAUTH_APP

    world = make_world(alb=True, POWERTOOLS_LOG_LEVEL="DEBUG")
    buffer = io.StringIO()
    names = ["", "review-apps-auth", "review-apps-webhook", "review-apps-task-events", "review-apps-wake"]
    attached = []
    for name in names:  # every function's logger and the root (libraries), all at DEBUG
        logger = logging.getLogger(name)
        handler = logging.StreamHandler(buffer)
        if logger.handlers and name:
            handler.setFormatter(logger.handlers[0].formatter)  # as in Lambda: JSON with every extra key
        logger.addHandler(handler)
        attached.append((logger, handler, logger.level))
        logger.setLevel(logging.DEBUG)
    try:
        host = live_app(world, 1)
        browser = world.edge().session()
        assert open_as(world, browser, host, "dana").status_code == 200
        assert open_as(world, world.edge().session(), host, "mallory").status_code == 403
    finally:
        for logger, handler, level in attached:
            logger.removeHandler(handler)
            logger.setLevel(level)
    logs = capfd.readouterr()
    text = buffer.getvalue() + logs.out + logs.err
    assert "sign-in granted" in text and "sign-in refused" in text  # it did log
    secrets = [
        ALB_CLIENT["client_secret"],
        OAUTH_APP["secret"],
        *world.edge().secrets_seen,
        *world.gitlab.state.oauth_tokens,
        *(c.value for c in browser.cookies),
    ]
    assert len(secrets) >= 7
    notes = "\n".join(n["body"] for n in world.notes(1))
    for secret in secrets:
        assert secret and secret not in text, f"in the logs: {secret[:6]}…"
        assert secret not in notes


def test_two_tabs_signing_in_at_once_both_get_in(signin_world):
    world = signin_world
    first, second = live_app(world, 1), live_app(world, 2)
    browser = world.edge().session()  # one browser, two tabs opened before either signs in
    tab1 = browser.get(f"https://{first}/", timeout=20)
    tab2 = browser.get(f"https://{second}/", timeout=20)
    assert "/users/sign_in" in tab1.url and "/users/sign_in" in tab2.url
    assert sign_in_at_gitlab(browser, tab1, "dana", PEOPLE["dana"][2]).url == f"https://{first}/"
    assert sign_in_at_gitlab(browser, tab2, "dana", PEOPLE["dana"][2]).url == f"https://{second}/"


# ---------------------------------------------------------------------- the door under abuse


def signin_items(world) -> list[dict]:
    pages = world.dynamodb.get_paginator("scan").paginate(TableName=SIGNIN_TABLE)
    return [item for page in pages for item in page["Items"]]


def test_a_flood_of_anonymous_sign_ins_leaves_the_records_alone(signin_world, tally):
    world = signin_world
    host = live_app(world, 1)
    world.reconcile()
    records_before = len(world._records())
    scanned_before = world.reconcile()["records"]
    browser = world.edge().session()
    junk = {f"junk{i}": "x" * 100 for i in range(20)}  # 26 parameters of at most 30, 2 KB of junk
    for n in range(1000):
        params = {
            "client_id": ALB_CLIENT["client_id"],
            "redirect_uri": f"https://{host}/oauth2/idpresponse",
            "response_type": "code",
            "scope": "openid",
            "state": f"s{n}",
            "nonce": "n",
            **junk,
        }
        browser.cookies.clear()  # a flood keeps no cookies (each sign-in sets one)
        answer = browser.get(f"{AUTHORIZE}?{urlencode(params)}", allow_redirects=False, timeout=20)
        assert answer.status_code == 302  # off to GitLab to sign in
    assert len(world._records()) == records_before  # the records table: not one item more
    assert world.reconcile()["records"] == scanned_before
    items = signin_items(world)
    assert len(items) == 1000 and max(len(json.dumps(item)) for item in items) < 2048
    assert all("junk" not in json.dumps(item) for item in items)  # unknown parameters are dropped
    assert all("expires_at" in item for item in items)
    tally["anonymous sign-ins flooded"] += 1000


def signed_in_stranger(world):
    host = live_app(world, 1)
    browser = world.edge().session()
    assert open_as(world, browser, host, "mallory").status_code == 403
    return host, browser


def test_a_signed_in_stranger_costs_little(signin_world):
    world = signin_world
    host, browser = signed_in_stranger(world)
    asked = lambda: sum(1 for _, path in world.gitlab.state.requests if "/members/all/" in path)  # noqa: E731
    before = asked()
    url = f"{AUTHORIZE}?" + urlencode(
        {
            "client_id": ALB_CLIENT["client_id"],
            "redirect_uri": f"https://{host}/oauth2/idpresponse",
            "response_type": "code",
            "scope": "openid",
            "state": "s",
            "nonce": "n",
        }
    )
    statuses = [browser.get(url, allow_redirects=False, timeout=20).status_code for _ in range(20)]
    assert asked() - before == 0  # the answer GitLab gave a moment ago is remembered
    assert statuses.count(403) <= 10 and statuses[-1] == 429  # ten a minute, then "too many"
    page = browser.get(url, allow_redirects=False, timeout=20)
    assert page.status_code == 429 and page.headers["Retry-After"] == "60"


def test_gitlab_busy_at_sign_in_is_a_page_that_says_try_again(signin_world):
    world = signin_world
    host = live_app(world, 1)
    browser = world.edge().session()
    world.gitlab.state.fail_next(4, status=429, path_contains="/members/all/")
    page = open_as(world, browser, host, "dana")
    assert page.status_code == 503 and page.headers["Retry-After"] == "30" and "Try again shortly" in page.text
    world.gitlab.state.faults.clear()
    assert browser.get(f"https://{host}/", timeout=20).status_code == 200  # and then it works


def test_a_bogus_code_at_the_callback_is_a_400_that_says_so(signin_world):
    world = signin_world
    host = live_app(world, 1)
    browser = world.edge().session()
    page = browser.get(f"https://{host}/", timeout=20)  # to GitLab's sign-in page, with our state cookie
    to_gitlab = next(r.headers["Location"] for r in page.history if "/oauth/authorize" in r.headers.get("Location", ""))
    state = parse_qs(urlsplit(to_gitlab).query)["state"][0]
    answer = browser.get(f"{SIGNIN_ISSUER}/callback?{urlencode({'state': state, 'code': 'bogus'})}", timeout=20)
    assert answer.status_code == 400 and "GitLab did not accept the sign-in code" in answer.text


def test_a_hosts_client_gets_codes_for_its_own_host_only(signin_world):
    """A code issued to host A's client is for host A: it can't be asked for with host B's redirect
    URI, nor redeemed by host B's client (what binds a sign-in to its host at the provider)."""
    world = signin_world
    first, second = live_app(world, 1), live_app(world, 2)
    browser = world.edge().session()
    assert open_as(world, browser, first, "dana").status_code == 200
    rule = lambda host: world.route(host)["rule"]["Actions"][0]["AuthenticateOidcConfig"]  # noqa: E731
    client_a, client_b = rule(first), rule(second)
    crossed = {
        "client_id": client_a["ClientId"],
        "redirect_uri": f"https://{second}/oauth2/idpresponse",
        "response_type": "code",
        "scope": "openid",
        "state": "s",
        "nonce": "n",
    }
    refused = browser.get(f"{AUTHORIZE}?{urlencode(crossed)}", allow_redirects=False, timeout=20)
    assert refused.status_code == 400 and "Location" not in refused.headers
    own = {**crossed, "redirect_uri": f"https://{first}/oauth2/idpresponse"}
    granted = browser.get(f"{AUTHORIZE}?{urlencode(own)}", allow_redirects=False, timeout=20)
    code = parse_qs(urlsplit(granted.headers["Location"]).query)["code"][0]
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": own["redirect_uri"]}
    as_b = browser.post(TOKEN, data=data, auth=(client_b["ClientId"], client_b["ClientSecret"]), timeout=20)
    assert as_b.status_code == 400 and as_b.json()["error"] == "invalid_grant"
    forged = browser.post(TOKEN, data=data, auth=(client_a["ClientId"], client_b["ClientSecret"]), timeout=20)
    assert forged.status_code == 401

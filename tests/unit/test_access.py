"""Who may open a review app: the redirect rule (every refusal, and a property that nothing outside
it is ever accepted) and the membership decision."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from review_apps.lifecycle import access
from review_apps.lifecycle.access import Member
from review_apps.model.record import Record
from review_apps.model.values import Status, StopReason

DOMAIN = "review.example.com"
HOST = "shop-mr7-p42.review.example.com"
GOOD = f"https://{HOST}/oauth2/idpresponse"


def test_the_albs_callback_on_a_review_host_is_accepted():
    assert access.redirect_host(GOOD, DOMAIN) == (HOST, (42, 7))


@pytest.mark.parametrize(
    "uri",
    [
        f"http://{HOST}/oauth2/idpresponse",  # not https
        f"https://{HOST}/oauth2/idpresponse/",  # another path
        f"https://{HOST}/oauth2/idpresponseX",
        f"https://{HOST}/other",
        f"https://{HOST}/oauth2/idpresponse?x=1",  # a query the ALB never sends
        f"https://{HOST}/oauth2/idpresponse#frag",
        f"https://{HOST}:8443/oauth2/idpresponse",  # a port
        f"https://user@{HOST}/oauth2/idpresponse",  # userinfo
        f"https://evil.com@{HOST}/oauth2/idpresponse",
        f"https://{HOST}@evil.com/oauth2/idpresponse",
        f"https://{HOST}.evil.com/oauth2/idpresponse",  # another domain ending like ours
        "https://shop-mr7-p42.review.example.com.evil.com/oauth2/idpresponse",
        "https://shop-mr7-p42.evilreview.example.com/oauth2/idpresponse",
        "https://review.example.com/oauth2/idpresponse",  # the domain itself
        "https://a.shop-mr7-p42.review.example.com/oauth2/idpresponse",  # two labels deep
        "https://shop.review.example.com/oauth2/idpresponse",  # not an MR's host
        "https://SHOP-MR7-P42.review.example.com/oauth2/idpresponse",  # not as the ALB writes it
        "https://shop-mr7-p42.review.example.com%2F@evil.com/oauth2/idpresponse",
        "https://shop-mr7-p42.review.example.com\\@evil.com/oauth2/idpresponse",
        "//shop-mr7-p42.review.example.com/oauth2/idpresponse",
        "https:///oauth2/idpresponse",
        " " + GOOD,
        GOOD + "\n",
        "",
        "https://" + "a" * 400 + ".review.example.com/oauth2/idpresponse",
    ],
)
def test_anything_else_is_refused(uri):
    assert access.redirect_host(uri, DOMAIN) is None


def test_without_a_review_domain_nothing_is_accepted():
    assert access.redirect_host(GOOD, "") is None


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=120))
def test_no_text_outside_the_rule_yields_a_redirect(text):
    """Whatever a browser sends, an accepted redirect URI is exactly the ALB's callback on one
    label directly under the review domain, naming an MR."""
    found = access.redirect_host(text, DOMAIN)
    if found is not None:
        host, mr = found
        assert text == f"https://{host}/oauth2/idpresponse"
        label, _, rest = host.partition(".")
        assert rest == DOMAIN and label and "@" not in text and ":" not in host
        assert label.endswith(f"mr{mr[1]}-p{mr[0]}")


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["http", "https", "HTTPS", "ftp", ""]),
    st.sampled_from(["", "u@", "a:b@"]),
    st.from_regex(r"[a-z0-9-]{1,20}-mr[0-9]{1,4}-p[0-9]{1,4}", fullmatch=True),
    st.sampled_from([".review.example.com", ".review.example.com.evil", ".example.com", ".review.example.comx"]),
    st.sampled_from(["", ":443", ":8080"]),
    st.sampled_from(["/oauth2/idpresponse", "/oauth2/idpresponse/", "/", "/oauth2/idpresponse?a=b"]),
)
def test_lookalike_redirects_are_refused(scheme, userinfo, label, domain, port, path):
    uri = f"{scheme}://{userinfo}{label}{domain}{port}{path}"
    accepted = access.redirect_host(uri, DOMAIN) is not None
    exact = (scheme, userinfo, domain, port, path) == ("https", "", ".review.example.com", "", "/oauth2/idpresponse")
    assert accepted == exact


def _record(**changes):
    base = Record(project_id=42, mr_iid=7, status=Status.LIVE, host=HOST, project_path="acme/shop")
    return dataclasses.replace(base, **changes)


@pytest.mark.parametrize("status", [Status.DEPLOYING, Status.LIVE, Status.ASLEEP, Status.QUEUED])
def test_an_app_that_starts_runs_sleeps_or_waits_can_be_opened(status):
    assert access.has_app_at(_record(status=status), HOST)


def test_an_app_falling_asleep_can_be_opened():
    assert access.has_app_at(_record(status=Status.STOPPING, stop_reason=StopReason.ASLEEP), HOST)


@pytest.mark.parametrize(
    "record",
    [
        None,
        _record(status=Status.STOPPED),
        _record(status=Status.FAILED),
        _record(status=Status.REJECTED),
        _record(status=Status.STOPPING, stop_reason=StopReason.MERGED),
        _record(host=""),
        _record(host="shop-mr7-p42.review.example.org"),
    ],
)
def test_no_app_or_another_host_cannot_be_opened(record):
    assert not access.has_app_at(record, HOST)


def test_a_member_at_the_level_gets_in():
    assert access.may_open(Member(20), 20) is None
    assert access.may_open(Member(50), 20) is None


def test_a_non_member_is_told_whom_to_ask_and_for_what():
    refusal = access.may_open(None, 20)
    assert refusal is not None and refusal.reason == "not_member"
    assert refusal.text == (
        "Only members of this review app's project with Reporter access or more can open it. Ask the project's "
        "maintainers for Reporter access or more, then open the address again."
    )
    assert "acme" not in refusal.text  # a stranger learns no project's name


def test_a_member_below_the_level_is_told_the_level_needed():
    refusal = access.may_open(Member(10), 30)
    assert refusal is not None and refusal.reason == "too_low"
    assert refusal.text.startswith(
        "Your access to this review app's project is Guest; review apps need Developer or more."
    )


@pytest.mark.parametrize("state", ["blocked", "deactivated", "banned", "ldap_blocked"])
def test_a_blocked_user_never_gets_in(state):
    refusal = access.may_open(Member(50, state), 10)
    assert refusal is not None and refusal.reason == "blocked" and state in refusal.text


def test_level_names():
    assert [access.level_name(v) for v in (10, 15, 20, 30, 40, 50, 7)] == [
        "Guest",
        "Planner",
        "Reporter",
        "Developer",
        "Maintainer",
        "Owner",
        "access level 7",
    ]

"""Address mode's pure rules: the host, the names, the priorities, the sweep; and the README's CI
job, whose shell must compute the very host the functions use."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from review_apps.lifecycle import addresses, sleep
from review_apps.lifecycle.addresses import Route, RouteWanted, host_label, plan_routes, route_wanted
from review_apps.model.record import Record
from review_apps.model.values import Status
from review_apps.problems import Problems
from review_apps.settings import SettingsError, load_settings
from review_apps.spec import parse_spec
from tests.unit.test_messages_and_models import ENV

ROOT = Path(__file__).resolve().parents[2]
LISTENER = "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/shared/50dc6c495c0c9188/f2f7dc8efc522ab2"
ADDRESSES = {
    **ENV,
    "ALB_LISTENER_ARN": LISTENER,
    "REVIEW_DOMAIN": "review.example.com",
    "VPC_ID": "vpc-0a1b2c3d",
    "MAX_RUNNING_APPS": "20",
    "OIDC_ISSUER": "https://abc123.execute-api.us-east-1.amazonaws.com/auth",
    "OIDC_CLIENT_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:111122223333:secret:ra-alb-AbCdEf",
    "SIGNIN_TABLE_NAME": "review-apps-signins",
    "OIDC_SIGNING_KEY_ARN": "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
}


# --------------------------------------------------------------------------- the host


@pytest.mark.parametrize(
    ("path", "project", "iid", "label"),
    [
        ("awesome_space/awesome_project", 14, 42, "awesome-project-mr42-p14"),
        ("Group/Shop.Web", 7, 1, "shop-web-mr1-p7"),
        ("a/__x__", 3, 9, "x-mr9-p3"),
        ("a/___", 3, 9, "mr9-p3"),  # nothing readable left: the ids alone
        ("g/" + "n" * 80, 123456, 7890, "n" * (63 - len("-mr7890-p123456")) + "-mr7890-p123456"),
        ("g/" + "ab-" * 30, 1, 2, ("ab-" * 30)[:56].rstrip("-") + "-mr2-p1"),
    ],
)
def test_the_host_is_one_readable_dns_label(path, project, iid, label):
    assert host_label(path, project, iid) == label
    assert len(label) <= 63 and re.fullmatch(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?", label)


def test_same_name_in_two_projects_and_two_mrs_of_one_project_get_different_hosts():
    assert host_label("shop/web", 1, 5) != host_label("payments/web", 2, 5)
    assert host_label("shop/web", 1, 5) != host_label("shop/web", 1, 6)
    # The ids are read from the end, so a name that looks like ids can't collide.
    assert host_label("g/x-mr1-p2", 3, 4) != host_label("g/x", 2, 1)


def _readme_ci_job() -> list[str]:
    """The `script:` lines of the README's "View app" job."""
    readme = (ROOT / "README.md").read_text()
    block = readme.split("```yaml\nreview-app-url:", 1)[1].split("```", 1)[0]
    script = block.split("  script:\n", 1)[1].split("  artifacts:", 1)[0]
    return [line.strip()[2:] for line in script.splitlines() if line.strip().startswith("- ")]


SH = shutil.which("sh")


def _ci_host(path: str, project: int, iid: int, tmp: Path) -> str:
    env = {
        "CI_MERGE_REQUEST_PROJECT_PATH": path,
        "CI_MERGE_REQUEST_PROJECT_ID": str(project),
        "CI_MERGE_REQUEST_IID": str(iid),
        "REVIEW_DOMAIN": "review.example.com",
        "PATH": "/usr/bin:/bin",
        "LC_ALL": "C.UTF-8",
    }
    subprocess.run([SH, "-ec", "\n".join(_readme_ci_job())], env=env, cwd=tmp, check=True, timeout=10)
    text = (tmp / "review-app.env").read_text()
    (tmp / "review-app.env").unlink()
    assert text.startswith("REVIEW_APP_URL=https://") and text.endswith(".review.example.com\n")
    return text.removeprefix("REVIEW_APP_URL=https://").removesuffix(".review.example.com\n")


@pytest.mark.skipif(SH is None, reason="needs a POSIX sh")
@pytest.mark.parametrize(
    "path",
    [
        "awesome_space/awesome_project",
        "Group/Shop.Web",
        "a/___",
        "g/" + "n" * 80,
        "g/" + "ab-" * 30,
        "g/Ünïcode_Näme",
        "g/-lead",
        "g/trail-",
    ],
)
def test_the_readme_ci_job_computes_the_same_host(path, tmp_path):
    assert _ci_host(path, 123, 45, tmp_path) == host_label(path, 123, 45)


@pytest.mark.skipif(SH is None, reason="needs a POSIX sh")
@settings(max_examples=40, deadline=None)
@given(
    name=st.text(st.characters(codec="utf-8", exclude_characters="\x00/"), min_size=0, max_size=90),
    project=st.integers(1, 10**9),
    iid=st.integers(1, 10**6),
)
def test_the_readme_ci_job_agrees_on_any_project_name(name, project, iid, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ci")
    assert _ci_host(f"group/{name}", project, iid, tmp) == host_label(f"group/{name}", project, iid)


# --------------------------------------------------------------------------- names and priorities


def test_target_group_names_are_the_installs_and_parse_back():
    name = addresses.target_group_name("review-apps-prod", 1234567, 8901)
    assert len(name) <= 32 and re.fullmatch(r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?", name)
    assert addresses.parse_target_group_name(name, "review-apps-prod") == (1234567, 8901)
    assert addresses.parse_target_group_name(name, "review-apps-staging") is None  # another install's
    assert addresses.parse_target_group_name("ra-zzzzzz-1-2", "review-apps-prod") is None
    assert addresses.parse_target_group_name(name + "0x", "review-apps-prod") is None
    assert addresses.target_group_name("a", 1, 2) != addresses.target_group_name("b", 1, 2)
    with pytest.raises(ValueError, match="longer than 32"):
        addresses.target_group_name("a", 10**12, 10**12)


def test_priorities_cover_the_band_once_from_a_spread_start():
    tried = list(addresses.priorities("install", 14, 3))
    assert len(tried) == len(set(tried)) == addresses.PRIORITY_MAX - addresses.PRIORITY_MIN + 1
    assert min(tried) == addresses.PRIORITY_MIN and max(tried) == addresses.PRIORITY_MAX
    assert tried[1] == tried[0] + 1 or tried[1] == addresses.PRIORITY_MIN  # the next one, wrapping
    starts = {next(addresses.priorities("install", 14, iid)) for iid in range(1, 101)}
    assert len(starts) >= 95  # spread: concurrent launches seldom want the same one


def test_a_full_listener_says_which_quota_and_what_to_do():
    text = addresses.listener_full_problem("it has 100 target groups, the most an ALB can hold")
    assert "100 target groups" in text and "was not started" in text and "MAX_RUNNING_APPS" in text
    other = addresses.listener_full_problem("x", "so the app runs but its address has no route")
    assert "was not started" not in other and "has no route" in other


# --------------------------------------------------------------------------- the sweep

NOW = 1_800_000_000


def record(iid: int, status: Status, **fields) -> Record:
    base = {"project_id": 14, "mr_iid": iid, "status": status, "host": f"h{iid}", "launched_at": NOW - 600}
    return Record(**{**base, **fields})


def route(iid: int, *rules: str, group: bool = True) -> Route:
    return Route((14, iid), f"tg{iid}" if group else "", tuple(rules))


HEALTHY = {"routed_target": "10.0.0.7:8000", "healthy_at": NOW - 60}


@pytest.mark.parametrize("status", list(Status))
def test_route_wanted_for_every_status(status):
    """A target group from launch until the app stops; a rule only once it was found healthy."""
    up = status in (Status.DEPLOYING, Status.LIVE)
    assert route_wanted(record(1, status)) == RouteWanted(up, False)
    assert route_wanted(record(1, status, **HEALTHY)) == RouteWanted(up, status == Status.LIVE)
    assert route_wanted(record(1, status, host="", **HEALTHY)) == RouteWanted(False, False)  # IP mode
    assert route_wanted(None) == RouteWanted(False, False)


def test_a_healthy_look_without_a_target_wants_no_rule():
    assert route_wanted(record(1, Status.LIVE, healthy_at=NOW)) == RouteWanted(True, False)


def test_asleep_queued_and_ended_apps_hold_nothing_on_the_load_balancer():
    records = [
        record(1, Status.LIVE, target_group_arn="tg1", rule_arn="r1", **HEALTHY),
        record(2, Status.ASLEEP),
        record(3, Status.QUEUED),
        record(4, Status.STOPPED, stopped_at=NOW - 1),  # just now: no grace any more
        record(5, Status.STOPPING),
        record(6, Status.FAILED),
    ]
    found = [route(1, "r1"), route(2, "r2"), route(3, group=False), route(4), route(5, "r5"), route(6), route(7, "r7")]
    plan = plan_routes(found, records, NOW)
    assert plan.remove == [
        Route((14, 2), "tg2", ("r2",)),
        Route((14, 4), "tg4", ()),
        Route((14, 5), "tg5", ("r5",)),
        Route((14, 6), "tg6", ()),
        Route((14, 7), "tg7", ("r7",)),  # no record at all
    ]
    assert plan.repair == []


def test_a_starting_app_keeps_its_target_group_and_loses_a_rule_it_should_not_have_yet():
    records = [record(1, Status.DEPLOYING, target_group_arn="tg1", rule_arn="r1"), record(2, Status.LIVE)]
    plan = plan_routes([route(1, "r1"), route(2, "r2")], records, NOW)
    assert plan.remove == [Route((14, 1), "", ("r1",)), Route((14, 2), "", ("r2",))]


def test_missing_parts_of_an_up_app_are_repaired_but_not_a_launch_in_flight():
    records = [
        record(1, Status.LIVE, target_group_arn="tg1", rule_arn="r1", **HEALTHY),  # its rule is gone
        record(2, Status.DEPLOYING),  # launched long ago, its target group never made
        record(3, Status.DEPLOYING, launched_at=NOW - 5),  # its launch is making it right now
        record(4, Status.LIVE, host=""),  # IP mode
        record(5, Status.LIVE, target_group_arn="tg5", rule_arn="r5", **HEALTHY),
        record(6, Status.LIVE, target_group_arn="tg6", **HEALTHY),  # healthy, its rule never made (a full listener)
        record(7, Status.LIVE, target_group_arn="tg7", routed_target="10.0.0.9:80"),  # not healthy yet: fine
    ]
    plan = plan_routes([route(1), route(5, "r5"), route(6), route(7)], records, NOW)
    assert [r.mr_iid for r in plan.repair] == [1, 2, 6]
    assert plan.remove == []


def test_a_second_rule_for_one_app_is_deleted_keeping_the_recorded_one():
    records = [record(1, Status.LIVE, target_group_arn="tg1", rule_arn="r1", **HEALTHY)]
    plan = plan_routes([route(1, "r0", "r1", "r2")], records, NOW)
    assert plan.remove == [Route((14, 1), "", ("r0", "r2"))] and plan.repair == []
    # If the record names none of them, nothing is guessed: they go, and the repair makes its rule again.
    plan = plan_routes([route(1, "r0", "r2")], records, NOW)
    assert plan.remove == [Route((14, 1), "", ("r0", "r2"))] and [r.mr_iid for r in plan.repair] == [1]


def test_kept_rules_whose_sign_in_differs_are_rewritten_where_they_forward():
    records = [
        record(1, Status.LIVE, target_group_arn="tg1", rule_arn="r1", **HEALTHY),
        record(3, Status.STOPPED, stopped_at=NOW - 600),
    ]
    found = [Route((14, 1), "tg1", ("r1",), (("r1", "tg1"),)), Route((14, 3), "tg3", ("r3",), (("r3", "tg3"),))]
    plan = plan_routes(found, records, NOW)
    assert plan.resign == [("r1", "tg1")]  # the removed route's rule goes, not resigned
    assert [r.mr for r in plan.remove] == [(14, 3)]


def test_leftovers_follow_the_record_read_again():
    found = route(1, "r1")
    assert addresses.leftovers(found, None) == Route((14, 1), "tg1", ("r1",))
    launching = record(1, Status.DEPLOYING, target_group_arn="tg1")  # launched again since the plan
    assert addresses.leftovers(found, launching) == Route((14, 1), "", ("r1",))
    live = record(1, Status.LIVE, target_group_arn="tg1", rule_arn="r1", **HEALTHY)
    assert addresses.leftovers(found, live) == Route((14, 1), "", ())


def test_target_state_and_the_first_healthy_look():
    health = [
        {"Target": {"Id": "10.0.0.7", "Port": 8000}, "TargetHealth": {"State": "initial"}},
        {"Target": {"Id": "10.0.0.8", "Port": 8000}, "TargetHealth": {"State": "healthy"}},
    ]
    assert addresses.target_state(health, "10.0.0.7:8000") == "initial"
    assert addresses.target_state(health, "10.0.0.8:8000") == "healthy"
    assert addresses.target_state(health, "10.0.0.8:9000") == ""
    starting = record(1, Status.LIVE, routed_target="10.0.0.7:8000")
    assert addresses.after_health_look(starting, health, NOW).healthy_at == 0
    found = addresses.after_health_look(record(1, Status.LIVE, routed_target="10.0.0.8:8000"), health, NOW)
    assert found.healthy_at == NOW and route_wanted(found).rule
    # Found healthy once, it keeps its rule when a later check fails (the note explains why).
    failing = [
        {"Target": {"Id": "10.0.0.8", "Port": 8000}, "TargetHealth": {"State": "unhealthy", "Reason": "Target.Timeout"}}
    ]
    later = addresses.after_health_look(found, failing, NOW + 60)
    assert later.healthy_at == NOW and route_wanted(later).rule and "did not answer" in later.health_note


def test_refused_hosts_are_remembered_for_a_minute_and_bounded():
    refused = sleep.RefusedHosts()
    refused.remember("a.example", 100)
    assert refused.refused("a.example", 100 + sleep.REFUSAL_MEMORY_SECONDS - 1)
    assert not refused.refused("a.example", 100 + sleep.REFUSAL_MEMORY_SECONDS)
    assert not refused.refused("b.example", 100)
    for n in range(sleep.REFUSAL_MEMORY_HOSTS + 5):
        refused.remember(f"h{n}.example", 200)
    assert not refused.refused("h0.example", 201) and refused.refused(f"h{sleep.REFUSAL_MEMORY_HOSTS + 4}.example", 201)


# --------------------------------------------------------------------------- settings and spec


def test_address_settings():
    settings = load_settings(ADDRESSES)
    assert settings.address_mode and settings.review_domain == "review.example.com"
    assert settings.vpc_id == "vpc-0a1b2c3d" and settings.alb_listener_arn == LISTENER
    assert not load_settings(ENV).address_mode
    assert load_settings({**ADDRESSES, "REVIEW_DOMAIN": "Review.Example.COM."}).review_domain == "review.example.com"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"ALB_LISTENER_ARN": LISTENER.replace("listener/app", "listener/net")}, "Application Load Balancer listener"),
        ({"REVIEW_DOMAIN": ""}, "REVIEW_DOMAIN is not set"),
        ({"REVIEW_DOMAIN": "*.review.example.com"}, "REVIEW_DOMAIN must be a DNS name"),
        ({"REVIEW_DOMAIN": "review_apps.example.com"}, "REVIEW_DOMAIN must be a DNS name"),
        ({"VPC_ID": "my-vpc"}, "VPC_ID must be a VPC id"),
        ({"VPC_ID": ""}, "VPC_ID is not set"),
        ({"MAX_RUNNING_APPS": "0"}, "unset \\(no cap\\).*at most 100"),
        ({"MAX_RUNNING_APPS": "100"}, "MAX_RUNNING_APPS is 100.*the wake function has one.*between 1 and 99"),
    ],
)
def test_address_settings_refuse_what_the_alb_cannot_hold(change, message):
    with pytest.raises(SettingsError, match=message):
        load_settings({**ADDRESSES, **change})


def test_sign_in_settings():
    members = load_settings(ADDRESSES)
    assert members.sign_in and members.min_access_level == 20 and members.alb_session_seconds == 3600
    assert members.gitlab_oauth_parameter == "/review-apps/gitlab-oauth"
    assert not load_settings({**ADDRESSES, "REVIEW_APP_ACCESS": "public"}).sign_in
    assert not load_settings(ENV).sign_in  # IP mode has no address to sign in to
    custom = load_settings({**ADDRESSES, "REVIEW_APP_MIN_ACCESS_LEVEL": "30", "REVIEW_APP_SESSION_SECONDS": "900"})
    assert (custom.min_access_level, custom.alb_session_seconds) == (30, 900)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"REVIEW_APP_ACCESS": "everyone"}, "REVIEW_APP_ACCESS must be members or public"),
        ({"REVIEW_APP_MIN_ACCESS_LEVEL": "25"}, "must be a GitLab access level"),
        ({"REVIEW_APP_MIN_ACCESS_LEVEL": "reporter"}, "must be a GitLab access level"),
        ({"REVIEW_APP_SESSION_SECONDS": "86400"}, "must be 60 to 43200"),
        ({"REVIEW_APP_SESSION_SECONDS": "0"}, "must be 60 to 43200"),
        ({"OIDC_CLIENT_SECRET_ARN": ""}, "OIDC_CLIENT_SECRET_ARN is not set"),
        ({"SIGNIN_TABLE_NAME": ""}, "SIGNIN_TABLE_NAME is not set"),
        ({"OIDC_SIGNING_KEY_ARN": ""}, "OIDC_SIGNING_KEY_ARN is not set"),
        ({"OIDC_ISSUER": "http://abc.example.com/auth"}, "OIDC_ISSUER must be https://<api host>/auth"),
        ({"OIDC_ISSUER": "https://abc.example.com/other"}, "OIDC_ISSUER must be https://<api host>/auth"),
    ],
)
def test_sign_in_settings_refuse_mistakes(change, message):
    with pytest.raises(SettingsError, match=message):
        load_settings({**ADDRESSES, **change})


def test_health_check_in_the_spec():
    def parse(text):
        return parse_spec("task_definition: shop\n" + text, 1800, 14400)

    assert parse("").health_check == "/"
    assert parse("health_check: /healthz?full=1\n").__class__ is Problems
    assert parse("health_check: /api/v1/health-check_2.json\n").health_check == "/api/v1/health-check_2.json"
    for bad in ("healthz", "/`rm -rf`", "/x\n", "[/a]", "/" + "a" * 300, "/with space"):
        result = parse(f"health_check: {bad!r}\n" if "\n" in bad else f"health_check: '{bad}'\n")
        assert isinstance(result, Problems) and "`health_check:`" in result.problems[0], bad


def test_health_problem_speaks_only_of_the_apps_own_unhealthy_target():
    def health(state, reason="", description="", ip="10.0.0.7", port=8000):
        return {
            "Target": {"Id": ip, "Port": port},
            "TargetHealth": {"State": state, "Reason": reason, "Description": description},
        }

    mismatch = health("unhealthy", "Target.ResponseCodeMismatch", "Health checks failed with these codes: [500]")
    assert "the app answered 500 to `/up` on port 8000, not 200-399" in addresses.health_problem(
        [mismatch], "10.0.0.7:8000", "/up"
    )
    for quiet in (
        [health("healthy")],
        [health("initial", "Elb.InitialHealthChecking")],
        [],
        [health("unhealthy", "Target.Timeout", ip="10.0.0.8")],
    ):  # another (old) target
        assert addresses.health_problem(quiet, "10.0.0.7:8000", "/") == ""
    odd = addresses.health_problem([health("unhealthy", "Elb.InternalError")], "10.0.0.7:8000", "/")
    assert "the load balancer's check of `/` on port 8000 fails (Elb.InternalError)" in odd

"""Sleep and wake's pure rules: who may sleep, the one metrics query per app, idleness, the
record as it falls asleep, wakes and ends, what a visitor is answered, and the host parser."""

from __future__ import annotations

import pytest

from review_apps import pages
from review_apps.lifecycle import addresses, sleep
from review_apps.lifecycle.planning import may_wake, plan_deploy, plan_stop
from review_apps.lifecycle.routing import ConsiderDeploy, Ignore
from review_apps.lifecycle.sleep import WakeAnswer
from review_apps.lifecycle.task_events import stopped
from review_apps.lifecycle.transitions import vanished
from review_apps.model.record import Record
from review_apps.model.values import Cause, Status, StopReason
from review_apps.problems import Problems
from review_apps.settings import SettingsError, load_settings
from review_apps.spec import parse_spec
from tests.unit.factories import MR, SHA, spec, task_event
from tests.unit.test_addresses import ADDRESSES

NOW = 1_800_000_000
TG = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/ra-abc123-14-1/6d0ecf831eec9f09"


def live(iid: int = 1, minutes: int = 20, **fields) -> Record:
    base = dict(
        project_id=14,
        mr_iid=iid,
        status=Status.LIVE,
        host=f"h{iid}",
        target_group_arn=TG,
        rule_arn="r",
        sleep_after=900,
        live_at=NOW - minutes * 60,
        launched_at=NOW - minutes * 60 - 40,
        task_arn="t",
        container="web",
        rate_microusd=36_000,
        first_live_at=NOW - 3600,
    )
    return Record(**{**base, **fields})


def test_only_live_routed_apps_awake_for_their_sleep_after_are_candidates():
    records = [
        live(1),
        live(2, minutes=10),  # not awake long enough
        live(3, sleep_after=0),  # never sleeps
        live(4, host=""),  # IP mode
        live(5, status=Status.DEPLOYING),
        live(6, minutes=15),  # exactly its sleep_after
        live(7, target_group_arn=""),
    ]
    assert [r.mr_iid for r in sleep.candidates(records, NOW)] == [1, 6]


def test_one_query_per_app_over_one_window():
    apps = [live(1), live(2, sleep_after=3600, minutes=90)]
    queries = sleep.metric_queries(apps)
    assert [q.query_id for q in queries] == ["q0", "q1"]
    assert queries[0].target_group == "targetgroup/ra-abc123-14-1/6d0ecf831eec9f09"
    # Back to when the earliest went live (90 minutes), to find each app's last visit.
    assert sleep.window_start(apps, NOW) == NOW - 90 * 60
    # Never further than the lookback, and never less than the longest sleep_after.
    assert sleep.window_start([live(1, minutes=24 * 60)], NOW) == NOW - sleep.LOOKBACK_SECONDS
    assert sleep.window_start([live(1, minutes=2)], NOW) == NOW - 900


def test_idle_means_no_request_within_each_apps_own_sleep_after():
    apps = [live(1), live(2), live(3), live(4, sleep_after=3600, minutes=90)]
    queries = sleep.metric_queries(apps)
    requests = {
        "q0": [(NOW - 16 * 60, 5.0)],  # only before its last 15 minutes: idle
        "q1": [(NOW - 60, 1.0)],  # a request a minute ago: busy
        "q2": [(NOW - 120, 0.0)],  # a zero point is no request
        "q3": [(NOW - 50 * 60, 2.0)],  # within its hour: busy
    }
    assert [r.mr_iid for r in sleep.idle(queries, requests, NOW)] == [1, 3]
    assert [r.mr_iid for r in sleep.idle(queries, {}, NOW)] == [1, 2, 3, 4]  # no points at all: idle


def test_the_idle_time_said_is_since_the_last_visit_or_since_it_went_live():
    [busy_earlier, never_visited] = sleep.metric_queries([live(1, minutes=40), live(2, minutes=20)])
    requests = {"q0": [(NOW - 23 * 60, 3.0), (NOW - 30 * 60, 1.0), (NOW - 5 * 60, 0.0)]}
    assert sleep.idle_seconds(busy_earlier, requests, NOW) == 23 * 60
    assert sleep.idle_seconds(never_visited, requests, NOW) == 20 * 60  # since it went live
    record = sleep.falling_asleep(live(2, minutes=20), NOW, idle=20 * 60 + 42)
    assert record.stop_detail == "nobody visited it for 20m" and record.history[-1].endswith("after 20m idle")
    # Never less than its sleep_after (a visit logged late can't make it look too eager).
    assert sleep.falling_asleep(live(2), NOW, idle=60).stop_detail == "nobody visited it for 15m"


def test_falling_asleep_then_stopped_is_asleep_with_its_cost_summed():
    record = sleep.falling_asleep(live(1, history=["woke at 09:00 for a visit"]), NOW)
    assert record.status == Status.STOPPING and record.stop_reason == StopReason.ASLEEP
    assert record.stop_detail == "nobody visited it for 15m"
    assert record.history[-1] == f"slept at {(NOW // 3600) % 24:02d}:{(NOW // 60) % 60:02d} after 15m idle"
    asleep = stopped(record, task_event("STOPPED", exit_code=143, stop_code="UserInitiated"), NOW)
    assert asleep.status == Status.ASLEEP and asleep.asleep_since and asleep.expires_at == 0
    assert asleep.awake_seconds > 0 and asleep.awake_cost_microusd == round(36_000 * asleep.awake_seconds / 3600)
    assert vanished(record, NOW).status == Status.ASLEEP  # its STOPPED event was lost


def test_history_keeps_the_newest_lines():
    record = live(1, history=[f"line {n}" for n in range(10)])
    assert len(sleep.woke(record, NOW).history) == sleep.HISTORY_LINES
    assert sleep.woke(record, NOW).history[-1].endswith("for a visit")


def test_a_visit_wakes_only_a_sleeping_app():
    asleep = live(1, status=Status.ASLEEP, stop_reason=StopReason.ASLEEP)
    falling = live(1, status=Status.STOPPING, stop_reason=StopReason.ASLEEP)
    assert may_wake(asleep) and may_wake(falling)
    assert not may_wake(live(1)) and not may_wake(None)
    assert not may_wake(live(1, status=Status.STOPPING, stop_reason=StopReason.MERGED))
    ask = ConsiderDeploy(MR, SHA, Cause.WAKE)
    assert isinstance(plan_deploy(ask, spec(), live(1), mr_state="opened", mr_head_sha=SHA), Ignore)
    assert not isinstance(plan_deploy(ask, spec(), asleep, mr_state="opened", mr_head_sha=SHA), Ignore)
    assert isinstance(plan_deploy(ask, spec(), asleep, mr_state="closed", mr_head_sha=SHA), Ignore)
    assert isinstance(plan_deploy(ask, None, asleep, mr_state="opened", mr_head_sha=SHA), Ignore)
    assert plan_stop(asleep) == asleep  # a merge or a stop ends a sleeping app too


def test_an_ended_sleeping_app_stops_for_good():
    ended = sleep.ended_asleep(
        live(1, status=Status.ASLEEP, stop_reason=StopReason.ASLEEP), StopReason.MERGED, "", NOW, NOW + 5
    )
    assert ended.status == Status.STOPPED and ended.stop_reason == StopReason.MERGED and ended.expires_at > NOW


@pytest.mark.parametrize(
    ("record", "kind"),
    [
        (None, "missing"),
        (live(1, status=Status.DEPLOYING), "starting"),
        (live(1, status=Status.ASLEEP, stop_reason=StopReason.ASLEEP), "waking"),
        (live(1, status=Status.QUEUED, queue_place=4), "queued"),
        (live(1), "starting"),  # address mode: up, but the load balancer has not found it healthy yet
        (live(1, healthy_at=NOW, routed_target="10.0.0.7:8000"), "awake"),
        (live(1, status=Status.STOPPING, stop_reason=StopReason.ASLEEP), "waking"),
        (live(1, status=Status.FAILED), "failed"),
        (live(1, status=Status.REJECTED), "failed"),
        (live(1, status=Status.STOPPED), "missing"),
    ],
)
def test_what_a_visit_finds(record, kind):
    assert sleep.answer_for(record).kind == kind


def test_the_pages():
    waking = pages.render(WakeAnswer("waking", 42, start_seconds=45))
    assert waking["statusCode"] == 503 and waking["headers"]["Retry-After"] == "10"
    assert "for !42" in waking["body"] and "Last time it took 45s" in waking["body"]
    assert '<meta http-equiv="refresh" content="10">' in waking["body"]
    assert "about a minute" in pages.render(WakeAnswer("waking", 42))["body"]
    assert "number 3 in the queue" in pages.render(WakeAnswer("queued", 42, place=3))["body"]
    missing = pages.render(WakeAnswer("missing"))
    assert missing["statusCode"] == 404 and "Retry-After" not in missing["headers"] and "refresh" not in missing["body"]
    assert pages.render(WakeAnswer("failed", 7))["headers"].get("Retry-After") is None
    assert all(p["headers"]["Cache-Control"] == "no-store" and p["isBase64Encoded"] is False for p in (waking, missing))


@pytest.mark.parametrize(
    ("host", "mr"),
    [
        ("shop-mr42-p14.review.example.com", (14, 42)),
        ("SHOP-MR42-P14.Review.Example.com:443", (14, 42)),
        ("mr42-p14.review.example.com", (14, 42)),
        ("shop-mr42-p14.evil.example.com", None),
        ("shop-mr42-p14.review.example.com.evil.com", None),
        ("a.shop-mr42-p14.review.example.com", None),
        ("shop-mr42.review.example.com", None),
        ("shopmr42-p14.review.example.com", None),
        ("review.example.com", None),
        ("", None),
        ("x" * 70 + "-mr1-p2.review.example.com", None),
    ],
)
def test_a_host_names_its_mr_only_under_the_domain(host, mr):
    assert addresses.parse_host(host, "review.example.com") == mr


def test_every_host_we_make_parses_back():
    for path, pid, iid in (("g/shop", 14, 42), ("g/x-mr1-p2", 3, 4), ("g/___", 9, 9)):
        host = addresses.hostname(path, pid, iid, "review.example.com")
        assert addresses.parse_host(host, "review.example.com") == (pid, iid)


def test_sleep_after_in_the_spec_and_the_install():
    def parse(text: str):
        return parse_spec("task_definition: shop\n" + text, 1800, 14400)

    assert parse("").sleep_after is None
    assert parse("sleep_after: 15m\n").sleep_after == 900
    assert parse("sleep_after: 0\n").sleep_after == 0
    for bad in ("4m", "soon", "true", "[1]", "-5m"):
        result = parse(f"sleep_after: {bad}\n")
        assert isinstance(result, Problems) and "at least 5m" in result.problems[0], bad
    assert sleep.sleep_after(None, 1800) == 1800 and sleep.sleep_after(0, 1800) == 0
    assert load_settings({**ADDRESSES, "DEFAULT_SLEEP_AFTER": "1h"}).default_sleep_after == 3600
    assert load_settings(ADDRESSES).default_sleep_after == 0
    with pytest.raises(SettingsError, match="at least 5m"):
        load_settings({**ADDRESSES, "DEFAULT_SLEEP_AFTER": "2m"})
    with pytest.raises(SettingsError, match="target group's ARN"):
        load_settings({**ADDRESSES, "WAKE_TARGET_GROUP_ARN": "wake"})
    assert load_settings({**ADDRESSES, "WAKE_TARGET_GROUP_ARN": TG}).wake_target_group_arn == TG
    assert load_settings(ADDRESSES).load_balancer_dimension == "app/shared/50dc6c495c0c9188"


def test_a_ttl_ends_a_stretch_not_the_app_when_it_can_sleep():
    ran_out = stopped(live(1), task_event("STOPPED", exit_code=124), NOW)
    assert ran_out.status == Status.STOPPED and ran_out.stop_reason == StopReason.TTL
    asleep = sleep.after_ttl(ran_out)
    assert asleep.status == Status.ASLEEP and asleep.expires_at == 0
    assert asleep.asleep_since == ran_out.stopped_at and asleep.history[-1].endswith("when its time to live ran out")
    for cannot in (live(1, sleep_after=0), live(1, host="")):  # never sleeps, or IP mode
        still = stopped(cannot, task_event("STOPPED", exit_code=124), NOW)
        assert sleep.after_ttl(still) == still
    crashed = stopped(live(1), task_event("STOPPED", exit_code=1), NOW)
    assert sleep.after_ttl(crashed) == crashed  # a crash is not a reason to keep its address


def test_a_wake_waits_its_turn_only_behind_others():
    from review_apps.lifecycle import wake_waits

    me = Record(project_id=14, mr_iid=1, status=Status.QUEUED, queued_at=5)
    other = Record(project_id=14, mr_iid=2, status=Status.QUEUED, queued_at=3)
    assert wake_waits([other], me.key) and wake_waits([other, me], me.key)
    assert not wake_waits([], me.key) and not wake_waits([me], me.key)


def test_the_awake_cost_line_is_left_out_when_it_never_slept():
    from review_apps.messages import awake_cost_line

    never_slept = Record(
        project_id=14,
        mr_iid=1,
        status=Status.ASLEEP,
        history=["slept at 10:20 after 15m idle"],
        first_live_at=1_000,
        awake_counted_until=1_000 + 1200,
        awake_seconds=1200,
        rate_microusd=12_345,
        awake_cost_microusd=round(12_345 * 1200 / 3600),
    )
    assert awake_cost_line(never_slept) == ""  # awake the whole span: "the whole time" would say the same
    slept = Record(**{**never_slept.__dict__, "awake_counted_until": 1_000 + 7200})
    assert "running the whole time would have cost about" in awake_cost_line(slept)


def test_the_visit_that_woke_an_app_says_so_and_later_visits_that_it_starts():
    claimed = live(1, status=Status.DEPLOYING)
    assert sleep.answer_for(claimed, woken=True).kind == "waking"
    assert sleep.answer_for(claimed).kind == "starting"
    # Woken into the queue, or found failed: `woken` changes nothing.
    assert sleep.answer_for(live(1, status=Status.QUEUED, queue_place=2), woken=True).kind == "queued"
    assert sleep.answer_for(live(1, status=Status.FAILED), woken=True).kind == "failed"

"""Which merge request hooks ask someone to review, what that asks of the app, and what the MR says:
pure parsing, routing and planning (no I/O)."""

from __future__ import annotations

import copy
import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from local import events
from review_apps import lifecycle
from review_apps.events import parse_gitlab_event
from review_apps.lifecycle import ConsiderDeploy, Ignore, Launch
from review_apps.lifecycle.sleep import review_words, woke
from review_apps.model.values import Cause, Status, StopReason
from tests.unit.factories import NOW, SHA, record, spec

ALICE, RITA, SAM = events.reviewer(51, "alice"), events.reviewer(61, "rita"), events.reviewer(71, "sam")


def hook(**kwargs) -> dict:
    return events.merge_request_hook(
        kwargs.pop("action", "update"),
        project_id=14,
        iid=3,
        sha=SHA,
        source_branch="feature/x",
        project_path="acme/shop",
        **kwargs,
    )


def asked(body: dict) -> tuple[str, ...]:
    return parse_gitlab_event(body).review_requested


def route(body: dict):
    return lifecycle.route_gitlab_event(parse_gitlab_event(body))


def test_a_reviewer_added_is_asked():
    assert asked(hook(reviewers=[ALICE, RITA], previous_reviewers=[ALICE])) == ("rita",)
    assert asked(hook(reviewers=[ALICE, RITA, SAM], previous_reviewers=[])) == ("alice", "rita", "sam")


def test_a_review_asked_again_is_asked():
    again = events.reviewer(61, "rita", re_requested=True)
    assert asked(hook(reviewers=[ALICE, again])) == ("rita",)  # the reviewers did not change
    assert asked(hook(reviewers=[ALICE, again], previous_reviewers=[ALICE, RITA])) == ("rita",)


@pytest.mark.parametrize(
    "body",
    [
        hook(reviewers=[ALICE], previous_reviewers=[ALICE, RITA]),  # removed
        hook(reviewers=[ALICE, RITA]),  # nothing changed
        hook(reviewers=[events.reviewer(61, "rita", re_requested=True)], labels=["ux"], previous_labels=[]),
        hook(reviewers=[ALICE, RITA], previous_reviewers=[ALICE], labels=["ux"], previous_labels=[]),
        hook(reviewers=[ALICE, RITA], previous_reviewers=[ALICE], draft=False, was_draft=True),
        hook(action="approved", reviewers=[events.reviewer(61, "rita", state="approved")]),
    ],
    ids=["removed", "unchanged", "label edit with a stale flag", "added with a label", "added on ready", "approval"],
)
def test_nothing_else_is_a_review_request(body):
    result = route(body)
    assert not (isinstance(result, ConsiderDeploy) and result.review_requested), result


def test_a_title_edit_with_a_stale_flag_is_no_request():
    body = hook(reviewers=[events.reviewer(61, "rita", re_requested=True)])
    body["changes"]["title"] = {"previous": "a", "current": "b"}
    assert asked(body) == ()


def test_a_review_request_routes_as_a_wake():
    result = route(hook(reviewers=[ALICE, RITA], previous_reviewers=[ALICE]))
    assert isinstance(result, ConsiderDeploy) and result.cause == Cause.WAKE
    assert result.review_requested == ("rita",)


def test_a_push_that_also_adds_a_reviewer_is_a_push():
    result = route(hook(reviewers=[ALICE, RITA], previous_reviewers=[ALICE], oldrev="0" * 40))
    assert isinstance(result, ConsiderDeploy) and result.cause == Cause.PUSHED


def test_unusable_names_and_many_reviewers_are_bounded():
    hostile = [events.reviewer(100 + i, f"x{i}") for i in range(30)] + [
        {**RITA, "id": 99, "username": "<img src=x>"},
        {**RITA, "id": True, "username": "bool-id"},
        "not a reviewer",
    ]
    names = asked(hook(reviewers=hostile, previous_reviewers=[]))
    assert len(names) == 10 and all(n.startswith("x") for n in names)
    names = asked(hook(reviewers=[{**RITA, "username": "<img src=x>"}], previous_reviewers=[]))
    assert names == ("",)
    assert review_words(names) == "a reviewer was"


@given(
    st.lists(
        st.dictionaries(
            st.sampled_from(["id", "username", "re_requested"]),
            st.none() | st.integers() | st.text(max_size=30) | st.booleans(),
        ),
        max_size=8,
    )
)
def test_any_reviewer_list_parses_to_safe_names(people):
    body = hook()
    body["reviewers"] = copy.deepcopy(people)
    body["changes"]["reviewers"] = {"previous": [], "current": copy.deepcopy(people)}
    for name in asked(body):
        assert name == "" or (name.replace("_", "").replace(".", "").replace("-", "").isalnum() and len(name) < 256)


def test_the_words_on_the_note():
    assert review_words(("rita",)) == "@rita was"
    assert review_words(("rita", "sam")) == "@rita and @sam were"
    assert review_words(("a", "b", "c", "d", "e")) == "@a, @b, @c and 2 more were"
    claim = woke(record(status=Status.DEPLOYING), NOW, ("rita",))
    assert claim.history[-1].endswith("because @rita was asked to review")
    assert woke(record(), NOW).history[-1].endswith("for a visit")


def plan(ask, the_spec, the_record, state="opened"):
    return lifecycle.plan_deploy(ask, the_spec, the_record, mr_state=state, mr_head_sha=SHA)


ASLEEP = record(status=Status.ASLEEP, stop_reason=StopReason.ASLEEP, host="h.example", sleep_after=900)
REQUEST = ConsiderDeploy(record().mr, SHA, Cause.WAKE, review_requested=("rita",))


def test_a_review_request_launches_a_sleeping_app_only():
    assert isinstance(plan(REQUEST, spec(), ASLEEP), Launch)
    for other in (record(status=Status.LIVE), record(status=Status.DEPLOYING), record(status=Status.STOPPED)):
        result = plan(REQUEST, spec(), other)
        assert isinstance(result, Ignore) and "not asleep" in result.reason
    assert isinstance(plan(REQUEST, spec(), None), Ignore)  # no app: that is the spec's trigger's job
    assert isinstance(plan(REQUEST, spec(), ASLEEP, state="closed"), Ignore)


def test_the_spec_can_turn_it_off():
    result = plan(REQUEST, spec(wake_on_review_request=False), ASLEEP)
    assert isinstance(result, Ignore) and "wake_on_review_request: false" in result.reason
    visit = dataclasses.replace(REQUEST, review_requested=())
    assert isinstance(plan(visit, spec(wake_on_review_request=False), ASLEEP), Launch)  # a visit still wakes it


def test_the_setting_must_be_a_boolean():
    from review_apps.problems import Problems
    from review_apps.spec import parse_spec

    refused = parse_spec("task_definition: web\nwake_on_review_request: maybe\n", 1800, 14400)
    assert isinstance(refused, Problems)
    assert refused.problems == ("`wake_on_review_request:` `maybe` must be `true` or `false`.",)
    assert parse_spec("task_definition: web\n", 1800, 14400).wake_on_review_request is True

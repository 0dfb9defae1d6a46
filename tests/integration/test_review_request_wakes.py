"""Awake before the reviewer arrives: a merge request hook that asks someone to review wakes the
MR's sleeping app, through the same path and rules as a visit, and nothing else in a hook does.
The real webhook, reconciler and task-event handlers against moto and the GitLab stand-in."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from local import events
from local.world import World

SHA1 = "1" * 40
SPEC = "task_definition: shop-web\ntrigger: merge_request\nttl: 45m\nsleep_after: 15m\n"
ALICE = events.reviewer(51, "alice")
RITA = events.reviewer(61, "rita")


def asleep(world: World, iid: int = 1, spec: str = SPEC) -> None:
    world.commit(f"{iid:040x}", spec=spec)
    assert world.open_mr(iid, f"{iid:040x}", branch=f"feature/{iid}")["status"] == 202
    task = world.record(iid)["task_arn"]
    world.task_event(task, "RUNNING")
    world.live_for(iid, 20)
    assert world.reconcile()["put_to_sleep"] >= 1
    world.stopped_as_asked(task)
    assert world.record(iid)["status"] == "asleep"


def ask_rita(world: World, iid: int = 1, **changes) -> dict:
    """The hook GitLab sends when Rita is added as a reviewer beside Alice."""
    return world.send_mr(iid, "update", reviewers=[ALICE, RITA], previous_reviewers=[ALICE], **changes)


def tasks_of(world: World, iid: int) -> list[dict]:
    return [t for t in world.tasks() if t["group"].endswith(f":{iid}")]


def test_a_reviewer_added_wakes_the_sleeping_app_once(make_world, tally):
    world = make_world(alb=True)
    asleep(world)
    with ThreadPoolExecutor(3) as pool:  # GitLab may send the same news more than once
        answers = list(pool.map(lambda _: ask_rita(world), range(3)))
    assert sorted(a["status"] for a in answers)[-1] == 202
    assert len(tasks_of(world, 1)) == 1 and world.record(1)["status"] == "deploying"
    note = world.note(1)
    assert "Review app: deploying" in note and "because @rita was asked to review" in note
    assert ask_rita(world)["status"] == 200  # awake now: a repeat launches nothing
    assert len(tasks_of(world, 1)) == 1
    tally["review requests that woke an app"] += 1


def test_a_review_asked_again_wakes_it(alb_world: World):
    world = alb_world
    asleep(world)
    again = world.send_mr(1, "update", reviewers=[ALICE, events.reviewer(61, "rita", re_requested=True)])
    assert again["status"] == 202 and len(tasks_of(world, 1)) == 1
    assert "because @rita was asked to review" in world.note(1)


def test_nothing_else_in_a_hook_wakes_a_sleeping_app(alb_world: World):
    world = alb_world
    asleep(world)
    sent = [
        # a reviewer removed
        world.send_mr(1, "update", reviewers=[ALICE], previous_reviewers=[ALICE, RITA]),
        # a label added (Rita still flagged re_requested from before: a stale flag is no request)
        world.send_mr(
            1, "update", labels=["ux"], previous_labels=[], reviewers=[events.reviewer(61, "rita", re_requested=True)]
        ),
        # a title or description edit, with the reviewers as they were
        world.send_mr(1, "update", reviewers=[ALICE, RITA]),
        # an approval
        world.send_mr(1, "approved", reviewers=[events.reviewer(61, "rita", state="approved")]),
        # a reviewer added in the same update as a label: not a review request alone
        ask_rita(world, labels=["ux"], previous_labels=[]),
    ]
    assert [a["status"] for a in sent] == [200] * 5, sent
    assert tasks_of(world, 1) == [] and world.record(1)["status"] == "asleep"


def test_an_awake_app_or_an_mr_without_an_app_is_left_alone(alb_world: World):
    world = alb_world
    world.commit(SHA1, spec=SPEC)
    world.open_mr(1, SHA1)
    task = world.record(1)["task_arn"]
    world.task_event(task, "RUNNING")
    answer = ask_rita(world)
    assert answer["status"] == 200 and "not asleep" in answer["body"]["message"]
    assert [t["taskArn"] for t in tasks_of(world, 1)] == [task]  # not relaunched

    world.gitlab.state.open_merge_request(14, 2, sha=SHA1, source_branch="feature/2")
    assert ask_rita(world, 2)["status"] == 200 and world.record(2) is None and tasks_of(world, 2) == []


def test_a_closed_mr_or_a_spec_that_says_no_wakes_nothing(alb_world: World):
    world = alb_world
    asleep(world, 1, SPEC + "wake_on_review_request: false\n")
    answer = ask_rita(world)
    assert answer["status"] == 200 and "wake_on_review_request: false" in answer["body"]["message"]
    asleep(world, 2)
    world.mr(2)["state"] = "closed"
    assert ask_rita(world, 2, state="closed")["status"] == 200
    assert tasks_of(world, 1) == [] and tasks_of(world, 2) == []


def test_the_queue_and_caps_apply(make_world):
    world = make_world(alb=True, MAX_RUNNING_APPS="1")
    asleep(world)
    world.commit("2" * 40, spec=SPEC)
    world.open_mr(2, "2" * 40, branch="feature/2")  # takes the only slot
    answer = ask_rita(world)
    assert answer["status"] == 202 and answer["body"]["message"].startswith("queued")
    assert world.record(1)["status"] == "queued" and tasks_of(world, 1) == []
    assert "Review app: queued" in world.note(1) and "**number 1** in the queue" in world.note(1)
    world.task_event(world.record(2)["task_arn"], "STOPPED", exit_codes={"web": 1})  # the slot frees
    assert world.reconcile()["started_from_queue"] == 1 and len(tasks_of(world, 1)) == 1

"""`make smoke`'s code, run as `make smoke-local` runs it: against the local world with its
stack, the GitLab stand-in delivering the sandbox project's webhook through the local edge, and
the cloud invoking the functions on ECS events. A healthy install passes every phase and leaves
nothing behind; a world broken three ways fails at the right phase with the right fix, and the
run still cleans up what it made."""

from __future__ import annotations

import re

import pytest

from local import smoke_local
from local.world import World


def smoke(world: World, breakage: str = "", timeout: float = 30.0) -> tuple[bool, str]:
    lines: list[str] = []
    passed = smoke_local.run(breakage, say=lines.append, timeout=timeout, world=world)
    return passed, "\n".join(lines)


def test_a_healthy_install_passes_every_phase_and_leaves_nothing(alb_world: World):
    passed, shown = smoke(alb_world)
    assert passed, shown
    phases = re.findall(r"^  (\w+)\s+(\d+\.\d) s  ", shown, re.MULTILINE)
    assert [name for name, _ in phases] == ["doctor", "project", "branch", "open", "push", "stop", "close", "cleanup"]
    assert "!1 live at https://review-apps-smoke-mr1-p200.review.example.test" in shown
    assert "/ redirects to the sign-in" in shown
    assert "the old task stopped" in shown and "the note says: stopped" in shown
    assert "nothing left (tasks, rules, target groups, schedules, task definitions)" in shown
    # What the install made for the MR is gone, in AWS itself.
    assert alb_world.tasks() == [] and alb_world.rules() == [] and alb_world.target_groups() == []
    assert alb_world.schedules() == {}
    families = alb_world.ecs.list_task_definitions(familyPrefix="review-app_", status="ACTIVE")
    assert families["taskDefinitionArns"] == []
    # And what the smoke test made in GitLab: its MR closed, its branch deleted.
    sandbox = alb_world.gitlab.state.projects[smoke_local.SANDBOX_ID]
    assert [mr["state"] for (pid, _), mr in alb_world.gitlab.state.merge_requests.items() if pid == 200] == ["closed"]
    assert list(sandbox.branches) == ["main"]


@pytest.mark.parametrize(
    ("breakage", "phase", "says", "fix"),
    [
        (
            "no-membership",
            "doctor",
            "@review-apps-bot is not a member of sandbox/review-apps-smoke with Developer access",
            "add @review-apps-bot as Developer in the project's Manage > Members, or MAINTAINER_TOKEN=",
        ),
        (
            "refused-image",
            "open",
            "the merge request's note says: not deployed",
            "SMOKE_IMAGE must be an image the install allows: add its registry/repository to SharedImagePrefixes",
        ),
        (
            "unreachable-webhook",
            "open",
            "for the note to say",
            "GitLab did not reach the webhook, or it refused the delivery: the project's Settings > Webhooks",
        ),
    ],
)
def test_a_broken_world_fails_with_the_fix_and_is_cleaned_up(alb_world: World, breakage, phase, says, fix):
    passed, shown = smoke(alb_world, breakage, timeout=8.0)
    assert not passed, shown
    failure = re.search(r"^FAIL (.*)$", shown, re.MULTILINE)
    assert failure and says in failure[1], shown
    assert re.search(r"^       fix: " + re.escape(fix), shown, re.MULTILINE), shown
    done = re.findall(r"^  (\w+)\s+\d+\.\d s  ", shown, re.MULTILINE)
    expected = ["doctor", "project", "branch", "open", "push", "stop", "close"]
    assert done == expected[: expected.index(phase)] + ["cleanup"], shown
    if breakage == "refused-image":
        assert "which this project may not use" in shown  # the note's own words, shown as seen
    mrs = [mr for (pid, _), mr in alb_world.gitlab.state.merge_requests.items() if pid == smoke_local.SANDBOX_ID]
    assert all(mr["state"] == "closed" for mr in mrs), shown
    assert list(alb_world.gitlab.state.projects[smoke_local.SANDBOX_ID].branches) == ["main"]
    assert shown.rstrip().splitlines()[-1].startswith("make smoke: FAILED after")


def test_with_a_namespace_it_makes_a_throwaway_project_onboards_it_and_deletes_it(alb_world: World):
    """SMOKE_NAMESPACE: the bot creates a project there (it owns it, so it may add the hook with
    the project's own token), plays the MR's life in it, and deletes it."""
    from tools.smoke import Smoke

    lines: list[str] = []
    with smoke_local.local_install("", alb_world) as (world, install):
        before = set(world.gitlab.state.projects)
        smoke = Smoke(
            install,
            world.edge().session(),
            namespace="sandbox",
            image=smoke_local.LOCAL_IMAGE,
            timeout=30,
            poll=0.3,
            say=lines.append,
        )
        passed = smoke.run()
    shown = "\n".join(lines)
    assert passed, shown
    assert re.search(r"created sandbox/review-apps-smoke-\d{14} \(id \d+\) with the install's webhook", shown), shown
    assert re.search(r"cleanup .* deleted sandbox/review-apps-smoke-\d{14}", shown), shown
    assert set(alb_world.gitlab.state.projects) == before  # the throwaway project is gone
    assert alb_world.tasks() == [] and alb_world.rules() == []

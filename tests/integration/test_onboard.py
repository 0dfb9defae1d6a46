"""`make onboard` against the GitLab stand-in and moto: a fresh project gets the bot as a member,
the install's webhook with its own token, and a merge request with a spec skeleton; a second run
changes nothing; DRY_RUN and `make doctor PROJECT=` change nothing at all. The hook it makes is
proven by a real delivery: GitLab's next merge request event reaches the webhook and is accepted."""

from __future__ import annotations

import boto3
import pytest

from local import gitlab_hooks
from local.world import INSTALL_ID, REGION, World
from tools.install import Clients, Install
from tools.onboard import CI_PATH, ONBOARDING_BRANCH, SPEC_PATH, Onboarding

PROJECT_ID, PATH = 300, "awesome_space/storefront"  # under the group the team's roles are tagged for
MAINTAINER = (70, "mia", "glpat-maintainer-mia-0123456789")


@pytest.fixture
def install(alb_world: World) -> Install:
    alb_world.deploy_stack(INSTALL_ID)
    state = alb_world.gitlab.state
    project = state.add_project(PROJECT_ID, PATH)
    user_id, username, token = MAINTAINER
    state.add_user(user_id, username, "Mia Maintainer", "mia-password")
    state.tokens[token] = user_id
    project.members[user_id] = 40
    state.hook_transport = alb_world.edge().session()  # GitLab reaches the stack's WebhookUrl
    return Install.read(INSTALL_ID, Clients(lambda service: boto3.client(service, region_name=REGION)))


def onboard(install: Install, **kwargs) -> tuple[list, list[str]]:
    said: list[str] = []
    checks = Onboarding(install, PATH, say=said.append, **kwargs).run()
    return checks, said


def writes(world: World) -> list[tuple[str, str]]:
    return [(m, p) for m, p in world.gitlab.state.requests if m != "GET"]


def test_onboarding_sets_a_project_up_and_a_second_run_changes_nothing(alb_world: World, install: Install):
    checks, _ = onboard(install, maintainer_token=MAINTAINER[2], family="shop-web")
    assert all(c.ok for c in checks), [c.what for c in checks if not c.ok]
    changed = [c.what for c in checks if c.changed]
    assert changed == [
        f"added @review-apps-bot to {PATH} as Developer",
        f"created the project's webhook to {install.outputs['WebhookUrl']}",
        "opened merge request !1 with a spec skeleton and the CI job",
    ]
    project = alb_world.gitlab.state.projects[PROJECT_ID]
    assert project.members[99] == 30
    [hook] = project.hooks
    assert (hook["merge_requests_events"], hook["pipeline_events"], hook["note_events"]) == (True, True, True)
    assert hook["push_events"] is False and hook["enable_ssl_verification"] is True
    files = project.commits[project.branches[ONBOARDING_BRANCH]]
    assert "task_definition: shop-web" in files[SPEC_PATH] and "review-app-image:" in files[CI_PATH]

    # The hook's token is the project's own: GitLab's delivery of the MR it opened was accepted
    # (a wrong token would be 401).
    gitlab_hooks.settle(alb_world.gitlab.state)
    [delivery] = alb_world.gitlab.state.hook_deliveries
    assert delivery["event"] == "Merge Request Hook" and delivery["outcome"] == 200, delivery

    before = len(writes(alb_world))
    again, _ = onboard(install, maintainer_token=MAINTAINER[2], family="shop-web")
    assert all(c.ok for c in again) and not any(c.changed for c in again), [c.what for c in again]
    assert "the onboarding merge request !1 is open: review and merge it" in [c.what for c in again]
    assert len(writes(alb_world)) == before  # the second run wrote nothing to GitLab


def test_a_dry_run_prints_the_files_and_changes_nothing(alb_world: World, install: Install):
    checks, said = onboard(install, maintainer_token=MAINTAINER[2], dry_run=True)
    assert [c.what for c in checks if c.changed] == [
        f"@review-apps-bot is not a member of {PATH} with Developer access: would add it as Developer",
        f"the project has no webhook to {install.outputs['WebhookUrl']}: would create it",
        f"no {SPEC_PATH}: would open a merge request adding it",
    ]
    assert any(line.startswith(f"--- {SPEC_PATH}") for line in said)
    assert writes(alb_world) == []


def test_without_a_maintainer_it_says_what_to_run(alb_world: World, install: Install):
    checks, _ = onboard(install)
    failed = {c.what: c.fix for c in checks if not c.ok}
    assert failed[f"@review-apps-bot is not a member of {PATH} with Developer access"].endswith(
        f"or MAINTAINER_TOKEN=glpat-… make onboard PROJECT={PATH}"
    )
    [hooks] = [fix for what, fix in failed.items() if "webhooks can't be read" in what]
    assert hooks.startswith(f"MAINTAINER_TOKEN=<a project maintainer's token, scope api> make onboard PROJECT={PATH}")
    assert writes(alb_world) == [("POST", "/projects/:id/repository/commits"), ("POST", "/projects/:id/merge_requests")]


def test_what_the_spec_needs_is_checked_and_each_fix_is_a_command(alb_world: World, install: Install):
    """A project outside the group the roles are tagged for: each missing tag is a command to run."""
    other = alb_world.gitlab.state.add_project(301, "payments/api")
    other.members[99] = 30
    other.commits[other.branches["main"]][SPEC_PATH] = (
        "task_definition: shop-web\nimage: 111122223333.dkr.ecr.us-east-1.amazonaws.com/shop:${CI_COMMIT_SHA}\n"
    )
    checks = Onboarding(install, "payments/api", change=False).run()
    failed = {c.what: c.fix for c in checks if not c.ok}
    assert failed["no task role in ReviewAppTaskRoleArns is tagged for payments/api"] == (
        "aws iam tag-role --role-name shop-review-task "
        "--tags Key=review-apps:projects,Value='awesome_space/ payments/api'"
    )
    assert failed["task definition shop-web is not tagged for payments/api"].startswith(
        "aws ecs tag-resource --resource-arn arn:aws:ecs:us-east-1:111122223333:task-definition/shop-web:1"
    )
    assert failed["ECR repository shop is not tagged for payments/api"].startswith(
        "aws ecr tag-resource --resource-arn arn:aws:ecr:us-east-1:111122223333:repository/shop"
    )
    assert writes(alb_world) == []

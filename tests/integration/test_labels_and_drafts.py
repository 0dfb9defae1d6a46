"""`label:` gates review apps (adding deploys, removing stops); drafts wait unless allowed."""

from __future__ import annotations

from local.world import PROJECT_ID, World

SHA1 = "6" * 40
ON_LABEL = "task_definition: shop-web\ntrigger: merge_request\nlabel: review-app\n"


def test_adding_the_label_deploys_and_removing_it_stops(world: World):
    world.commit(SHA1, spec=ON_LABEL)
    answer = world.open_mr(1, SHA1)
    assert "does not have the `review-app` label" in answer["body"]["message"] and world.tasks() == []
    assert world.relabel(1, ["review-app"])["status"] == 202
    [task] = world.tasks()
    world.task_event(task["taskArn"], "RUNNING")
    assert world.relabel(1, ["review-app", "ux"])["status"] == 200  # another label: nothing
    assert world.relabel(1, ["ux"])["status"] == 202
    assert world.task(task["taskArn"])["lastStatus"] == "STOPPED"
    world.task_event(task["taskArn"], "STOPPED", exit_codes={"web": 143}, stop_code="UserInitiated")
    note = world.note(1)
    assert "its label was removed" in note and "add the label again" in note


def test_drafts_wait_until_ready(world: World):
    world.commit(SHA1, spec="task_definition: shop-web\ntrigger: merge_request\n")
    world.gitlab.state.open_merge_request(PROJECT_ID, 1, sha=SHA1, source_branch="feature/draft")
    world.mr(1)["draft"] = True
    answer = world.send_mr(1, "open")
    assert "draft merge requests get no automatic review app" in answer["body"]["message"]
    assert world.tasks() == []
    assert world.mark_ready(1)["status"] == 202 and len(world.tasks()) == 1


def test_drafts_deploy_when_the_spec_allows(world: World):
    world.commit(SHA1, spec="task_definition: shop-web\ntrigger: merge_request\ndrafts: true\n")
    world.gitlab.state.open_merge_request(PROJECT_ID, 1, sha=SHA1, source_branch="feature/draft")
    world.mr(1)["draft"] = True
    assert world.send_mr(1, "open")["status"] == 202


def test_pipelines_respect_the_label(world: World):
    world.commit(SHA1, spec="task_definition: shop-web\nlabel: review-app\n")
    world.gitlab.state.open_merge_request(PROJECT_ID, 1, sha=SHA1, source_branch="feature/p")
    assert "does not have the `review-app` label" in world.pipeline(1)["body"]["message"]
    world.mr(1)["labels"] = ["review-app"]
    assert world.pipeline(1)["status"] == 202

"""Caps on running review apps, and the queue behind them, through the real handlers."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from local import events
from local.lambda_runtime import LambdaContext, load_handler
from local.world import PROJECT_ID, PROJECT_PATH, TABLE, WEBHOOK_SECRET, World
from review_apps.messages import needs_publish
from review_apps.model.record import Record

ON_OPEN = "task_definition: shop-web\ntrigger: merge_request\n"
OTHER_PROJECT, OTHER_PATH = 15, "awesome_space/other_app"


def sha(n: int) -> str:
    return f"{n:040x}"


def open_mrs(world: World, iids) -> None:
    for iid in iids:
        world.commit(sha(iid), spec=ON_OPEN)
        world.open_mr(iid, sha(iid), branch=f"feature/{iid}")


def task_of(world: World, iid: int, project: int = PROJECT_ID) -> dict | None:
    return next((t for t in world.tasks() if t["group"] == f"review-app:{project}:{iid}"), None)


def end(world: World, iid: int) -> None:
    """The MR's app stops (here: it crashed), as ECS reports it."""
    world.task_event(task_of(world, iid)["taskArn"], "STOPPED", exit_codes={"web": 1})


def test_at_the_cap_a_new_app_waits_with_its_place_and_starts_when_a_slot_frees(make_world):
    world = make_world(MAX_RUNNING_APPS="2")
    open_mrs(world, [1, 2])
    world.commit(sha(3), spec=ON_OPEN)
    third = world.open_mr(3, sha(3), branch="feature/3")
    assert third["status"] == 202 and third["body"]["place"] == 1
    open_mrs(world, [4])
    assert len(world.tasks()) == 2 and world.running_slots() == {f"{PROJECT_ID}/1", f"{PROJECT_ID}/2"}
    assert "Review app: queued" in world.note(3) and "**number 1** in the queue" in world.note(3)
    assert "this install runs at most 2 review apps at once" in world.note(3)
    assert "**number 2** in the queue" in world.note(4)
    assert world.commit_statuses(sha(3))[-1]["status"] == "pending"

    assert world.reconcile()["started_from_queue"] == 0  # no slot is free yet
    end(world, 1)
    assert world.running_slots() == {f"{PROJECT_ID}/2"}
    assert world.reconcile()["started_from_queue"] == 1
    assert task_of(world, 3) is not None and task_of(world, 4) is None
    assert "Review app: deploying" in world.note(3) and world.commit_statuses(sha(3))[-1]["status"] == "running"
    assert "**number 1** in the queue" in world.note(4)
    assert len(world.tasks()) == 2 and len(world.running_slots()) == 2
    for iid in (1, 2, 3, 4):
        assert len([n for n in world.notes(iid) if "review-app:note" in n["body"]]) == 1


def test_a_queued_mr_that_closes_leaves_the_queue_and_the_others_move_up(make_world):
    world = make_world(MAX_RUNNING_APPS="1")
    open_mrs(world, [1, 2, 3])
    assert "**number 2** in the queue" in world.note(3)
    world.send_mr(2, "close")
    assert "taken out of the queue" in world.note(2) and "the merge request was closed" in world.note(2)
    assert world.commit_statuses(sha(2))[-1]["status"] == "canceled"
    assert "**number 1** in the queue" in world.note(3)
    end(world, 1)
    world.reconcile()
    assert task_of(world, 2) is None and task_of(world, 3) is not None


def test_a_new_commit_keeps_its_place_and_the_queue_starts_the_latest(make_world):
    world = make_world(MAX_RUNNING_APPS="1")
    open_mrs(world, [1, 2, 3])
    world.commit(sha(22), spec=ON_OPEN)
    world.push(2, sha(22))
    assert "**number 1** in the queue" in world.note(2) and f"`{sha(22)[:8]}`" in world.note(2)
    end(world, 1)
    world.reconcile()
    started = task_of(world, 2)
    assert started is not None and world.record(2)["commit_sha"] == sha(22)
    assert "**number 1** in the queue" in world.note(3)


def test_a_replacement_for_a_running_app_never_queues(make_world):
    world = make_world(MAX_RUNNING_APPS="1")
    open_mrs(world, [1])
    world.commit(sha(11), spec=ON_OPEN)
    assert world.push(1, sha(11))["status"] == 202
    assert world.record(1)["status"] == "deploying" and world.running_slots() == {f"{PROJECT_ID}/1"}


def test_the_per_project_cap_leaves_other_projects_alone(make_world):
    world = make_world(MAX_RUNNING_APPS_PER_PROJECT="1")
    open_mrs(world, [1, 2])
    assert "this project may run at most 1 review app at once" in world.note(2)
    world.gitlab.state.add_project(OTHER_PROJECT, OTHER_PATH)
    world.commit(sha(9), spec=ON_OPEN, project=OTHER_PROJECT)
    world.gitlab.state.open_merge_request(OTHER_PROJECT, 1, sha=sha(9), source_branch="feature/9")
    body = events.merge_request_hook(
        "open", project_id=OTHER_PROJECT, iid=1, sha=sha(9), source_branch="feature/9", project_path=OTHER_PATH
    )
    assert world.deliver(body, "Merge Request Hook")["status"] == 202
    assert task_of(world, 1, OTHER_PROJECT) is not None and task_of(world, 2) is None
    assert world.running_slots(f"project/{PROJECT_ID}") == {f"{PROJECT_ID}/1"}


def test_queued_mrs_answer_status_and_stop_commands(make_world):
    world = make_world(MAX_RUNNING_APPS="1")
    world.gitlab.state.projects[PROJECT_ID].members[51] = 30
    open_mrs(world, [1, 2])
    world.comment(2, "/review-app status")
    assert "is queued (number 1 in line)" in world.note(2)
    world.comment(2, "/review-app deploy")
    assert "already queued (number 1 in line)" in world.note(2)
    world.comment(2, "/review-app extend 1h")
    assert "it is queued" in world.note(2)
    world.comment(2, "/review-app stop")
    assert "taken out of the queue" in world.note(2) and "@alice stopped it with `/review-app stop`" in world.note(2)
    end(world, 1)
    assert world.reconcile()["started_from_queue"] == 0 and world.tasks() == []


CAP, MRS, CONTAINERS = 3, 12, 4


def test_concurrent_events_never_exceed_the_cap_and_nobody_is_dropped(make_world):
    """12 MRs open at once through 4 separate containers, then apps end while reconcilers and new
    commits race: at no point do more than 3 apps run, and every MR eventually gets its app."""
    world = make_world(MAX_RUNNING_APPS=str(CAP))
    requests = []
    for iid in range(1, MRS + 1):
        world.commit(sha(iid), spec=ON_OPEN)
        world.gitlab.state.open_merge_request(PROJECT_ID, iid, sha=sha(iid), source_branch=f"feature/{iid}")
        body = events.merge_request_hook(
            "open",
            project_id=PROJECT_ID,
            iid=iid,
            sha=sha(iid),
            source_branch=f"feature/{iid}",
            project_path=PROJECT_PATH,
        )
        requests.append(events.api_event(body, "Merge Request Hook", WEBHOOK_SECRET))
    webhooks = [load_handler("WebhookFunction") for _ in range(CONTAINERS)]

    def deliver(pair):
        index, request = pair
        return webhooks[index % CONTAINERS](request, LambdaContext(function_name="WebhookFunction"))["statusCode"]

    with ThreadPoolExecutor(CONTAINERS) as pool:
        statuses = list(pool.map(deliver, enumerate(requests)))
    assert all(s == 202 for s in statuses), statuses
    assert len(world.tasks()) == CAP and len(world.running_slots()) == CAP
    places = sorted(world.record(i)["queue_place"] for i in range(1, MRS + 1) if world.record(i)["status"] == "queued")
    assert places == list(range(1, MRS - CAP + 1))  # every waiting MR has its own place
    # A writer that lost the race to create an MR's note leaves its view to the reconciler's next
    # run (README, How it stays correct): after one, GitLab shows every record.
    assert world.reconcile()["started_from_queue"] == 0  # every slot is still taken
    behind = behind_on_gitlab(world)
    assert behind == [], [(i, {k: world.record(i)[k] for k in SHOWN}, world.notes(i)) for i in behind]

    reconcilers = [load_handler("ReconcileFunction") for _ in range(2)]
    most_running, rounds = 0, 0
    while any(world.record(i)["status"] == "queued" for i in range(1, MRS + 1)):
        rounds += 1
        assert rounds <= MRS, "the queue stopped moving"
        running = world.tasks()
        # End every running app, and at the same time let two reconcilers and a new commit race.
        for task in running:
            world.task_event(task["taskArn"], "STOPPED", exit_codes={"web": 1})
        waiting = [i for i in range(1, MRS + 1) if world.record(i)["status"] == "queued"]
        pusher = waiting[-1]
        world.commit(sha(100 + rounds), spec=ON_OPEN)
        old = world.mr(pusher)["sha"]
        world.mr(pusher)["sha"] = sha(100 + rounds)
        push = events.api_event(
            events.merge_request_hook(
                "update",
                project_id=PROJECT_ID,
                iid=pusher,
                sha=sha(100 + rounds),
                source_branch=f"feature/{pusher}",
                project_path=PROJECT_PATH,
                oldrev=old,
            ),
            "Merge Request Hook",
            WEBHOOK_SECRET,
        )
        with ThreadPoolExecutor(3) as pool:
            jobs = [pool.submit(r, {}, LambdaContext(function_name="ReconcileFunction")) for r in reconcilers]
            jobs.append(pool.submit(webhooks[0], push, LambdaContext(function_name="WebhookFunction")))
            for job in jobs:
                job.result()
        now_running = len(world.tasks())
        most_running = max(most_running, now_running)
        assert now_running <= CAP, f"round {rounds}: {now_running} apps running"
        assert len(world.running_slots()) == now_running
    assert most_running == CAP
    started = {int(t["group"].rsplit(":", 1)[1]) for t in world.tasks("STOPPED") + world.tasks()}
    assert started == set(range(1, MRS + 1))  # nobody was dropped
    assert behind_on_gitlab(world) == []


SHOWN = ("status", "queue_place", "note_id", "note_claimed_at", "note_digest", "commit_status", "rev")


def behind_on_gitlab(world: World) -> list[int]:
    """MRs whose note, commit status or environment do not show their record yet."""
    return [i for i in range(1, MRS + 1) if needs_publish(Record.from_item(world.record(i)))]


def test_caps_turned_on_while_apps_run_count_them_after_one_reconcile(make_world):
    world = make_world()  # no caps yet
    open_mrs(world, [1, 2])
    assert world.running_slots() == set()
    world.redeploy(MAX_RUNNING_APPS="2")
    # A stale member too: an MR whose app is long gone (a hand-edited table, say).
    world.dynamodb.update_item(
        TableName=TABLE,
        Key={"pk": {"S": "slots#all"}},
        UpdateExpression="ADD holders :h",
        ExpressionAttributeValues={":h": {"SS": ["14/77"]}},
    )
    summary = world.reconcile()
    assert summary["slots_corrected"] == 3
    assert world.running_slots() == {f"{PROJECT_ID}/1", f"{PROJECT_ID}/2"}
    world.commit(sha(3), spec=ON_OPEN)
    assert world.open_mr(3, sha(3), branch="feature/3")["body"]["place"] == 1
    assert world.reconcile()["slots_corrected"] == 0


def test_a_queued_mr_whose_spec_was_removed_leaves_the_queue(make_world):
    world = make_world(MAX_RUNNING_APPS="1")
    open_mrs(world, [1, 2])
    world.commit(sha(20), spec=None)
    world.mr(2)["sha"] = sha(20)  # the push event was lost; the queue reads the head itself
    end(world, 1)
    world.reconcile()
    assert world.tasks() == [] and world.record(2)["status"] == "rejected"
    assert "no longer exists at commit" in world.note(2)


def test_two_freed_slots_start_exactly_the_two_first_in_line(make_world):
    world = make_world(MAX_RUNNING_APPS="2")
    open_mrs(world, [1, 2, 3, 4, 5])
    end(world, 1)
    end(world, 2)
    # The count is what the reconciler knows it started, and the third in line is not even tried:
    # the pass keeps the slot set it read up to date as apps start.
    lookups = len(world.gitlab.state.requests)
    assert world.reconcile()["started_from_queue"] == 2
    assert task_of(world, 3) is not None and task_of(world, 4) is not None and task_of(world, 5) is None
    tried = [path for _, path in world.gitlab.state.requests[lookups:] if path == "/projects/:id/merge_requests/:iid"]
    assert len(tried) == 2
    assert "**number 1** in the queue" in world.note(5)

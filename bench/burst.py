"""A burst: 500 deliveries over 100 MRs, with duplicates and reordering, through the real
WebhookFunction in several concurrent "containers"; then the invariants."""

from __future__ import annotations

import random
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from local import events
from local.lambda_runtime import LambdaContext, load_handler
from local.world import PROJECT_ID, PROJECT_PATH, WEBHOOK_SECRET, World

MRS = 100
CONTAINERS = 4
ON_OPEN = "task_definition: shop-web\ntrigger: merge_request\n"


def run(world: World) -> dict:
    rng = random.Random("burst")
    opened_at = datetime.now(UTC) - timedelta(minutes=5)
    deliveries = []
    for iid in range(1, MRS + 1):
        first, second = f"{iid:020d}{1:020d}", f"{iid:020d}{2:020d}"
        world.commit(first, spec=ON_OPEN)
        world.commit(second, spec=ON_OPEN)
        world.gitlab.state.open_merge_request(PROJECT_ID, iid, sha=second, source_branch=f"burst/{iid}")
        common = {"project_id": PROJECT_ID, "iid": iid, "source_branch": f"burst/{iid}", "project_path": PROJECT_PATH}
        open_ = events.merge_request_hook("open", sha=first, updated_at=opened_at, **common)
        push = events.merge_request_hook(
            "update", sha=second, oldrev=first, updated_at=opened_at + timedelta(minutes=1), **common
        )
        edit = events.merge_request_hook("update", sha=second, updated_at=opened_at + timedelta(minutes=2), **common)
        for body, key in ((open_, f"{iid}-open"), (push, f"{iid}-push")):
            request = events.api_event(body, "Merge Request Hook", WEBHOOK_SECRET, {"idempotency-key": key})
            deliveries += [request, request]  # every delivery arrives twice
        deliveries.append(events.api_event(edit, "Merge Request Hook", WEBHOOK_SECRET))
    rng.shuffle(deliveries)  # and in no particular order
    handlers = [load_handler("WebhookFunction") for _ in range(CONTAINERS)]

    def deliver(index_request):
        index, request = index_request
        return handlers[index % CONTAINERS](request, LambdaContext(function_name="WebhookFunction"))["statusCode"]

    started = time.perf_counter()
    with ThreadPoolExecutor(CONTAINERS) as pool:
        statuses = list(pool.map(deliver, enumerate(deliveries)))
    elapsed = time.perf_counter() - started

    running: dict[str, int] = {}
    for task in world.tasks():
        running[task["group"]] = running.get(task["group"], 0) + 1
    notes_per_mr = [sum("review-app:note" in n["body"] for n in world.notes(iid)) for iid in range(1, MRS + 1)]
    heads = [world.record(iid)["commit_sha"].endswith(f"{2:020d}") for iid in range(1, MRS + 1)]
    return {
        "deliveries": len(deliveries),
        "mrs": MRS,
        "containers": CONTAINERS,
        "seconds": elapsed,
        "statuses": {str(s): statuses.count(s) for s in sorted(set(statuses))},
        "max_tasks_per_mr": max(running.values(), default=0),
        "mrs_running": len(running),
        "max_notes_per_mr": max(notes_per_mr),
        "mrs_on_latest_commit": sum(heads),
    }

"""`make demo`: one merge request's review app, from opening to its (extended) TTL running out.

Everything runs on this machine: AWS is moto on 127.0.0.1, GitLab is the stand-in, and the
webhooks, ECS events and the schedule go through the real functions. Each
step prints what a reviewer would see on the merge request.
"""

from __future__ import annotations

import os
import re
import shutil
import textwrap
from datetime import UTC, datetime, timedelta

import time_machine

from local.edge import sign_in_at_gitlab
from local.world import CLUSTER, PEOPLE, PROJECT_ID, PROJECT_PATH, REVIEW_DOMAIN, SPEC, World, running_world

WIDTH = min(shutil.get_terminal_size((100, 20)).columns, 100)
EMOJI = {
    ":hourglass:": "⏳",
    ":white_check_mark:": "✅",
    ":stop_button:": "⏹",
    ":x:": "❌",
    ":zzz:": "💤",
    ":warning:": "⚠",
}
SHA1 = "3f6c2a9e8d1b4c7a9e0f1d2c3b4a5968778695a4"
SHA2 = "7b1e4d0c9a8f7e6d5c4b3a2918273645fedcba98"
SHA3 = "c0ffee0c9a8f7e6d5c4b3a2918273645fedcba98"
# Address mode (the default): each MR at https://<host> on a shared ALB. DEMO_MODE=ip shows IP mode.
ADDRESS_MODE = os.environ.get("DEMO_MODE", "address") != "ip"
HOST = f"awesome-project-mr1-p{PROJECT_ID}.{REVIEW_DOMAIN}"


def heading(number: int, text: str) -> None:
    print()
    print(f"── {number}. {text} ".ljust(WIDTH, "─"))


def said(who: str, text: str) -> None:
    print(textwrap.fill(f"{who}: {text}", WIDTH, subsequent_indent="    "))


def webhook(answer: dict, what: str = "") -> None:
    said(
        f"  GitLab → WebhookFunction{f' ({what})' if what else ''}",
        f"HTTP {answer['status']} {answer['body'].get('message', '')}",
    )


def task_event(answer: dict, status: str) -> None:
    result = answer.get("result")
    extra = f" ({answer['reason']})" if result == "ignored" else ""
    said("  ECS → TaskEventsFunction", f"{status} → {result}{extra}")


def show_mr(world: World, iid: int, sha: str) -> None:
    note = world.note(iid)
    print("\n  What the merge request shows:")
    if note is None:
        print("  │ (no review-app note yet)")
    else:
        text = re.sub(r"<!--.*?-->\n", "", note)
        for code, symbol in EMOJI.items():
            text = text.replace(code, symbol)
        text = text.replace("**", "").replace("### ", "")
        for line in text.strip().splitlines():
            for wrapped in textwrap.wrap(line, WIDTH - 6) or [""]:
                print(f"  │ {wrapped}")
    env = world.environment("review/feature-checkout")
    if env:
        print(f"  │ Environment {env['name']}: {env['state']}, {env['external_url'] or 'no URL yet'}")
    statuses = world.commit_statuses(sha)
    if statuses:
        latest = statuses[-1]
        target = f" → {latest['target_url']}" if latest.get("target_url") else ""
        print(f"  │ Commit {sha[:8]} status 'review-app': {latest['status']}{target}")


def start(world: World, clock, task_arn: str, label: str = "") -> None:
    """Fargate starts a task as it does, with the clock moving: finding capacity, pulling the
    image, starting the container. Each phase's event goes through TaskEventsFunction."""
    created = datetime.now(UTC)  # RunTask was just called (moto keeps no createdAt)
    clock.shift(timedelta(seconds=1))
    task_event(world.task_event(task_arn, "PROVISIONING"), f"{label}PROVISIONING")
    clock.shift(timedelta(seconds=9))
    pulling = datetime.now(UTC)
    timeline = {"createdAt": created, "pullStartedAt": pulling}
    task_event(world.task_event(task_arn, "PENDING", timeline=timeline), f"{label}PENDING, pulling the image")
    clock.shift(timedelta(seconds=24))
    timeline["pullStoppedAt"] = datetime.now(UTC)
    task_event(world.task_event(task_arn, "PENDING", timeline=timeline), f"{label}PENDING, image pulled")
    clock.shift(timedelta(seconds=7))
    task_event(world.task_event(task_arn, "RUNNING", timeline=timeline), f"{label}RUNNING")


def show_route(world: World) -> None:
    """What the load balancer does with the MR's host: its rule, target group and targets."""
    if not ADDRESS_MODE:
        return
    route = world.route(HOST)
    groups, rules = len(world.target_groups()), len(world.rules())
    print(f"\n  The load balancer's listener, for {HOST}:")
    if route is None:
        [catch_all] = [r for r in world.rules(catch_all=True) if r["RuleArn"] == world.catch_all_rule]
        signs_in = any(a["Type"] == "authenticate-oidc" for a in catch_all["Actions"])
        then = "sign in with GitLab, then " if signs_in else ""
        print(
            f"  • no rule of its own: the stack's catch-all (priority {catch_all['Priority']}, "
            f"host-header *.{world.review_domain}) → {then}the wake function"
        )
    else:
        group = route["target_group"].split(":targetgroup/", 1)[1].split("/")[0]
        targets = ", ".join(route["targets"]) or "none"
        signs_in = any(a["Type"] == "authenticate-oidc" for a in route["rule"]["Actions"])
        then = "sign in with GitLab (authenticate-oidc), then " if signs_in else ""
        print(f"  • rule priority {route['priority']}: host-header {HOST} → {then}target group {group}")
        print(f"  • targets: {targets}")
    print(f"  • this install holds {groups} target group(s) and {rules} rule(s) of its own on the load balancer")


def show_tasks(world: World) -> None:
    tasks = world.tasks("RUNNING") + world.tasks("STOPPED")
    print("\n  Tasks in the (emulated) cluster:")
    for task in tasks:
        reason = f" — {task['stoppedReason']}" if task.get("stoppedReason") else ""
        print(f"  • {task['taskArn'].rsplit('/', 1)[-1][:8]}… {task['group']} {task['lastStatus']}{reason}")
    if not tasks:
        print("  • none")


def visit(browser, url: str, who: str):
    """Open `url` in `browser`; sign in as `who` if GitLab asks. Prints each hop of the way."""
    page = browser.get(url, timeout=20)
    if "/users/sign_in" in page.url:
        hops = " → ".join(_hop(r.url) for r in page.history)
        said(f"  {who.capitalize()}'s browser", f"{hops} → GitLab's sign-in form; signs in as @{who}")
        page = sign_in_at_gitlab(browser, page, who, PEOPLE[who][2])
    hops = " → ".join(_hop(r.url) for r in [*page.history, page])
    said(f"  {who.capitalize()}'s browser", f"{hops}: HTTP {page.status_code}")
    return page


def _hop(url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{parts.hostname}{parts.path}"


def show_sign_in(world: World, clock):
    """Who may open the app: members sign in once with GitLab; anyone else is refused."""
    heading(6, "Who can open it: project members, signed in with GitLab (the install's OIDC provider)")
    world.commit(SHA3)
    world.gitlab.state.open_merge_request(PROJECT_ID, 2, sha=SHA3, source_branch="feature/search")
    webhook(world.send_mr(2, "open"), "MR !2 opened")
    webhook(world.pipeline(2), "MR !2's pipeline succeeded")
    second = world.record(2)
    start(world, clock, second["task_arn"], "MR !2's task ")
    edge = world.edge()
    dana = edge.session()
    print(f"\n  Dana (Developer of {PROJECT_PATH}) opens MR !1's app:")
    page = visit(dana, f"https://{HOST}/", "dana")
    print(f"  │ {re.search(r'<h1[^>]*>(.*?)</h1>', page.text).group(1)}")
    print("\n  …then MR !2's app: the provider remembers her, asks GitLab only whether she is a member:")
    page = visit(dana, f"https://{second['host']}/", "dana")
    print(f"  │ {re.search(r'<h1[^>]*>(.*?)</h1>', page.text).group(1)}")
    print(f"\n  Mallory (not a member of {PROJECT_PATH}) opens MR !1's app:")
    page = visit(edge.session(), f"https://{HOST}/", "mallory")
    for paragraph in re.findall(r"<(?:h1|p)>(.*?)</(?:h1|p)>", page.text)[:3]:
        for line in textwrap.wrap(paragraph.replace("&#x27;", "'"), WIDTH - 6):
            print(f"  │ {line}")
    webhook(world.send_mr(2, "close"), "MR !2 closed")
    task_event(
        world.task_event(
            second["task_arn"],
            "STOPPED",
            exit_codes={"web": 143},
            stop_code="UserInitiated",
            stopped_reason="Review app stopped: merge request closed",
        ),
        "MR !2 closed: STOPPED",
    )
    show_mr(world, 1, SHA2)
    return dana


def main() -> None:
    # The demo's clock moves forward when time passes (20 idle minutes, a deadline), for every part
    # of it alike (functions, emulator, stand-in), so each step's times follow the previous step's.
    with (
        time_machine.travel(datetime.now(UTC), tick=True) as clock,
        running_world(alb=ADDRESS_MODE, **({"DEFAULT_SLEEP_AFTER": "15m"} if ADDRESS_MODE else {})) as world,
    ):
        print("Review apps, locally: AWS is moto on", world.moto.url, "and GitLab is a stand-in on", world.gitlab.url)
        if ADDRESS_MODE:
            print(f"Address mode: a shared ALB's HTTPS listener for *.{REVIEW_DOMAIN} (DEMO_MODE=ip for IP mode);")
            print("apps sleep after 15 minutes without a visit (the install's DEFAULT_SLEEP_AFTER).")
        print(f"Project {PROJECT_PATH} commits this .gitlab/review-app.yml:")
        for line in SPEC.splitlines():
            print(f"    {line}")

        heading(1, "A developer opens merge request !1 (branch feature/checkout)")
        world.commit(SHA1)
        webhook(world.open_mr(1, SHA1))
        show_mr(world, 1, SHA1)

        heading(2, "The MR pipeline builds and pushes the image, and succeeds")
        webhook(world.pipeline(1))
        [task] = world.tasks()
        definition = world.ecs.describe_task_definition(taskDefinition=task["taskDefinitionArn"])["taskDefinition"]
        web = definition["containerDefinitions"][0]
        print(f"\n  RunTask on FARGATE with {definition['family']}:{definition['revision']}, image {web['image']}")
        print(f"  The app runs as: {' '.join(web.get('entryPoint', []) + web['command'])}")
        told = {e["name"]: e["value"] for e in web.get("environment") or []}
        where = told.get("REVIEW_APP_URL") or "(IP mode: its address comes from ECS as it starts)"
        print(
            f"  The app is told where it lives: REVIEW_APP_URL={where}, CI_MERGE_REQUEST_IID="
            f"{told['CI_MERGE_REQUEST_IID']}, CI_COMMIT_SHORT_SHA={told['CI_COMMIT_SHORT_SHA']}"
        )
        show_deadline(world)
        show_route(world)
        show_mr(world, 1, SHA1)

        heading(3, "Fargate starts the task: capacity, the image pull, the container")
        start(world, clock, task["taskArn"])
        show_route(world)
        show_mr(world, 1, SHA1)

        heading(4, "The developer pushes a fix; its pipeline succeeds")
        world.commit(SHA2)
        webhook(world.push(1, SHA2))
        webhook(world.pipeline(1))
        [new_task] = world.tasks()
        show_tasks(world)
        show_route(world)
        show_mr(world, 1, SHA2)

        heading(5, "The old task's STOPPED event arrives late; the new task starts")
        task_event(
            world.task_event(
                task["taskArn"],
                "STOPPED",
                exit_codes={"web": 143},
                stop_code="UserInitiated",
                stopped_reason="Review app replaced by commit 7b1e4d0c",
            ),
            "old task STOPPED",
        )
        start(world, clock, new_task["taskArn"])
        show_route(world)
        show_mr(world, 1, SHA2)

        if ADDRESS_MODE:
            browser = show_sign_in(world, clock)
            heading(7, "Nobody opens it for 20 minutes: the reconciler puts it to sleep")
            clock.shift(timedelta(minutes=20))
            summary = world.reconcile()
            said(
                "  Schedule → ReconcileFunction",
                f"{summary['sleep_candidates']} live app(s), one GetMetricData call, "
                f"{summary['put_to_sleep']} put to sleep",
            )
            task_event(
                world.task_event(
                    new_task["taskArn"],
                    "STOPPED",
                    exit_codes={"web": 143},
                    stop_code="UserInitiated",
                    stopped_reason="Review app asleep: no visit for 15 minutes",
                ),
                "STOPPED",
            )
            show_route(world)
            show_mr(world, 1, SHA2)

            heading(8, f"Two hours later, Dana opens https://{HOST}/checkout again: the visit wakes it")
            clock.shift(timedelta(hours=2))
            page = browser.get(f"https://{HOST}/checkout", timeout=20)
            title = re.search(r"<h1>(.*?)</h1>", page.text).group(1)
            said(
                "  Dana's browser ← ALB (still signed in) ← WakeFunction",
                f"HTTP {page.status_code}, Retry-After {page.headers['Retry-After']}: "
                f'"{title}" (the page reloads itself)',
            )
            [new_task] = world.tasks()
            start(world, clock, new_task["taskArn"])
            show_route(world)
            show_mr(world, 1, SHA2)

        step = 9 if ADDRESS_MODE else 6
        heading(step, "A reviewer needs more time and comments `/review-app extend 1h`")
        world.gitlab.state.projects[PROJECT_ID].members[51] = 30  # alice is a Developer
        webhook(world.comment(1, "/review-app extend 1h"))
        show_deadline(world)
        show_mr(world, 1, SHA2)

        heading(
            step + 1,
            "The new end time comes: EventBridge Scheduler stops the task (no function of ours runs)"
            + ("; the app sleeps until the next visit" if ADDRESS_MODE else ""),
        )
        clock.shift(timedelta(seconds=int(world.record(1)["deadline"]) - int(datetime.now(UTC).timestamp())))
        request = world.fire_schedule(f"mr-{PROJECT_ID}-1")
        said("  Scheduler → ecs:StopTask", request["Reason"])
        task_event(
            world.task_event(
                new_task["taskArn"],
                "STOPPED",
                exit_codes={"web": 143},
                stop_code="UserInitiated",
                stopped_reason=request["Reason"],
            ),
            "STOPPED",
        )
        show_tasks(world)
        show_route(world)
        show_mr(world, 1, SHA2)

        heading(step + 2, "The developer pushes again, the app comes back, and then the MR is merged")
        world.commit(SHA3)
        webhook(world.push(1, SHA3))
        webhook(world.pipeline(1))
        [last_task] = world.tasks()
        start(world, clock, last_task["taskArn"])
        show_route(world)
        clock.shift(timedelta(minutes=10))  # reviewed for ten minutes, then merged
        webhook(world.send_mr(1, "merge"))
        task_event(
            world.task_event(
                last_task["taskArn"],
                "STOPPED",
                exit_codes={"web": 143},
                stop_code="UserInitiated",
                stopped_reason="Review app stopped: merge request merged",
            ),
            "STOPPED",
        )
        show_route(world)
        show_mr(world, 1, SHA3)
        left = world.ecs.list_tasks(cluster=CLUSTER, desiredStatus="RUNNING")["taskArns"]
        print(
            f"\nDone: {len(left)} tasks running, one note on the MR, edited {count_edits(world)} times; "
            f"{world.webhooks_sent} webhooks sent, each shown above."
        )


def show_deadline(world: World) -> None:
    for name, schedule in world.schedules().items():
        print(
            f"  Deadline: schedule {name} {schedule['ScheduleExpression']} UTC → ecs:StopTask "
            f"(then {schedule['ActionAfterCompletion'].lower()}s itself)"
        )


def count_edits(world: World) -> int:
    return sum(1 for method, path in world.gitlab.state.requests if method == "PUT" and path.endswith("notes/:note_id"))


if __name__ == "__main__":
    main()

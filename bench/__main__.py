"""`make bench`: measure, print the tables, and write BENCHMARKS.md.

Every ratio is measured in one run against a floor measured in the same run, on the same
machine, so the machine's speed cancels out. Nothing here is part of `make test`.
"""

from __future__ import annotations

import logging
import os
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path

from bench import burst, cold, size, sleep, start, warm
from local.world import running_world

ROOT = Path(__file__).resolve().parent.parent

READING = """## Reading these numbers

- **Cold init.** The handler modules import boto3 (through the DynamoDB type serializer), Powertools'
  Logger and python-gitlab (with requests/urllib3; the webhook also the HTTP resolver). Clients are
  built on first use, the EC2 client only when public IPs are on, and the idempotency utility (the
  heaviest Powertools import) only when a delivery needs it; X-Ray's Tracer is not used. The "import +
  its clients" columns show what a function's first request adds (now four clients: the deadline's
  schedules need EventBridge Scheduler).
- **Warm latency** against moto and the stand-in is dominated by the number of calls (each is an HTTP
  round trip to a local emulator), so the ratio is close to "calls made / calls needed". The floor
  includes the deadline's schedule (create at launch, move when live, delete at the end). Calls the
  handler makes beyond the floor, per step, and why they stay:
  - **MR open, push, pipeline** (above 1.2× except push): two idempotency writes per delivery
    (in progress, then done), so that a redelivery or a resend gets the first answer back; the record
    written three times around a launch (the claim before RunTask, which is what makes concurrent
    deliveries safe; the task after it, so a newer delivery can stop it; what was published, so the
    next publish calls GitLab only for what changed). Folding the third write into the second would
    mean publishing a launch before it is known to have won its race. The pipeline step also reads the
    MR from GitLab (its head, labels and draft state), which the floor takes from the event.
  - **MR close**: the published write and the commit status; the absolute gap is a couple of local
    round trips (about 20 ms here). Stops no longer pay the idempotency writes: a stop is idempotent by
    itself.
  - **ECS RUNNING** is below the floor because the floor creates an environment and deployment that
    the handler already has from the launch. **ECS STOPPED** posts the commit status once more, so
    it no longer says "live until …".
- **Calls dropped in the previous round** (still out): the idempotency writes for stop events; the
  note-marker lookup for a brand-new MR (its first note is created directly); the save after a
  publish that changed nothing; one of two Scheduler calls when a replacement moves a deadline.
- **Wake.** A visit that wakes an app runs the same launch as an opened MR (GitLab's MR and spec,
  the claim, RunTask, the schedule, the note), minus the webhook's idempotency writes, plus the
  record read that finds the MR from the host and one after the claim to answer from: so it is
  close to (here below) the webhook's launch. A visit while the app wakes reads one record and
  renders the page. The warm tables above are IP mode; address mode adds the route's calls at
  launch (`DescribeTargetGroups`, and for a new route `CreateTargetGroup`,
  `ModifyTargetGroupAttributes`, `DescribeRules`, `CreateRule`) and two at RUNNING
  (`RegisterTargets`, `DescribeTargetHealth`).
- **Reconciler with 100 live apps.** The steady run's calls are dominated by two per-app costs:
  `ListTaskDefinitions` (one per derived family, from the task-definition retirement that predates
  addresses) and `DescribeTargetHealth` (one per live, routed app, so that a failing health check is
  explained on the MR); sleep adds one `GetMetricData` for all candidates, and the route sweep adds
  `DescribeTargetGroups`, `DescribeTags` per 20 target groups and `DescribeRules` per page. Putting
  an app to sleep costs `ModifyRule` (to the wake function), `StopTask`, `DeleteSchedule` and two
  record writes (falling asleep, then what was published). The second row was measured before a
  later fix: the health look now reads the records again when the run put apps to sleep, so it
  skips them (there, `DescribeTargetHealth`×50 and one more `Scan`; not re-measured).
- **Sign-in and ownership.** AuthFunction imports Authlib's client (about 80 ms more than the
  others); the other functions don't import it. The launch now reads the
  `review-apps:projects` tag of its ECR repository (`ListTagsForResource`, cached a minute per
  container) and of its listed roles (`ListRoleTags`, likewise): part of the pipeline step above.
"""


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    line = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"  # noqa: E731
    return "\n".join([line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)])


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def machine() -> str:
    memory = ""
    try:
        with open("/proc/meminfo") as meminfo:
            kb = int(next(line for line in meminfo if line.startswith("MemTotal")).split()[1])
        memory = f", {kb / 1024 / 1024:.0f} GiB"
    except (OSError, StopIteration):
        pass
    return f"{platform.machine()}, {os.cpu_count()} cores{memory}, {platform.system()} {platform.release()}"


def main() -> None:
    logging.getLogger().setLevel(logging.ERROR)
    os.environ["POWERTOOLS_LOG_LEVEL"] = "ERROR"
    sections = [
        f"# Benchmarks\n\nMeasured by `make bench` on {datetime.now(UTC):%Y-%m-%d %H:%M UTC}, "
        f"{machine()}, Python {platform.python_version()} (tests) against moto and the GitLab stand-in "
        "on 127.0.0.1. Figures are from one run; ratios compare subjects measured in that same run."
    ]

    print("cold init …", file=sys.stderr)
    c = cold.measure()
    rows = [
        [
            name,
            ms(t),
            f"{t / c['floor']:.2f}×",
            ms(c["with_clients"][name]),
            f"{c['with_clients'][name] / c['floor']:.2f}×",
        ]
        for name, t in c["functions"].items()
    ]
    heaviest = "\n".join(
        f"- {name}: " + ", ".join(f"{mod} {ms(sec)}" for mod, sec in mods) for name, mods in c["heaviest"].items()
    )
    sections.append(
        f"## Cold init\n\nImporting each handler module in a fresh process ({c['python']}, a virtualenv with only "
        f"`requirements.txt` and boto3: no sam-cli, no awscrt), median of {c['runs']} runs, against the floor "
        f'`import boto3; boto3.client("ecs")` = **{ms(c["floor"])}** in the same run. Handlers build their clients '
        "on first use, so the last two columns add the clients each function creates.\n\n"
        + table(["function", "import", "× floor", "import + its clients", "× floor"], rows)
        + "\n\nThe handler module's own imports, by cumulative time (one `-X importtime` run):\n\n"
        + heaviest
    )

    with running_world() as world:
        print("warm latency …", file=sys.stderr)
        lat = warm.latency(world)
    rows = []
    for name, r in lat.items():
        ratio = f"{r['p50'] / r['bare_p50']:.2f}×" if r["bare_p50"] else "n/a (needs no call)"
        rows.append([name, ms(r["p50"]), ms(r["p99"]), ms(r["bare_p50"]) if r["bare_p50"] else "—", ratio])
    sections.append(
        f"## Warm latency per event kind\n\n{warm.ITERATIONS} events of each kind through the real handler, "
        "against the bare API calls that step needs made directly with boto3 and python-gitlab, both against the "
        "same moto server and GitLab stand-in in the same run.\n\n"
        + table(["event", "handler p50", "handler p99", "bare calls p50", "p50 ratio"], rows)
    )

    # The bench leaves records active, so a low cap would turn launches into queueing; what a
    # cap costs does not depend on its value.
    with running_world(MAX_RUNNING_APPS="100000") as world:
        print("warm latency with caps on …", file=sys.stderr)
        capped = warm.latency(world)
    rows = [
        [name, ms(lat[name]["p50"]), ms(capped[name]["p50"]), f"{capped[name]['p50'] / lat[name]['p50']:.2f}×"]
        for name in lat
        if lat[name]["bare_p50"]
    ]  # the comment step makes no call to compare
    sections.append(
        "## With caps on\n\nThe same steps with a cap on running apps (the template's default is "
        "`MaxRunningApps=20`; here a cap these runs never reach, since what a cap costs does not depend on its "
        "value). A write that starts or ends an app becomes a DynamoDB transaction with the cap scope's slot "
        "set; the other writes do not change. (moto would copy the whole table for every transaction, to "
        "roll it back; the local world backs up only the items a transaction names, as a cost DynamoDB does "
        "not have either.)\n\n" + table(["event", "p50 without caps", "p50 with caps", "ratio"], rows)
    )

    with running_world() as world:
        print("API calls per step …", file=sys.stderr)
        steps = warm.calls_per_step(world)
    rows = [
        [
            name,
            str(sum(a.values())),
            ", ".join(f"{k.split(':', 1)[1]}×{v}" if v > 1 else k.split(":", 1)[1] for k, v in sorted(a.items()))
            or "—",
            str(sum(g.values())),
            ", ".join(f"{k}×{v}" if v > 1 else k for k, v in sorted(g.items())) or "—",
        ]
        for name, a, g in steps
    ]
    sections.append(
        "## API calls per step\n\nA full lifecycle (open → pipeline → running → push → pipeline → "
        "running → TTL), counted by instrumenting the handlers' boto3 clients and the GitLab stand-in.\n\n"
        + table(["step", "AWS", "AWS operations", "GitLab", "GitLab calls"], rows)
    )

    with running_world() as world:
        print("burst …", file=sys.stderr)
        b = burst.run(world)
    sections.append(
        f"## Burst\n\n{b['deliveries']} deliveries over {b['mrs']} MRs (each open and push delivered twice, plus a "
        f"label edit, all shuffled) through {b['containers']} concurrent WebhookFunction containers: "
        f"**{b['seconds']:.1f} s** ({b['deliveries'] / b['seconds']:.0f} deliveries/s). Answers: {b['statuses']}.\n\n"
        f"- most tasks running for one MR: **{b['max_tasks_per_mr']}** (MRs with a task: {b['mrs_running']})\n"
        f"- most review-app notes on one MR: **{b['max_notes_per_mr']}**\n"
        f"- MRs whose app runs the latest commit: **{b['mrs_on_latest_commit']} of {b['mrs']}**"
    )

    with running_world(alb=True) as world:
        print("wake latency …", file=sys.stderr)
        w = sleep.wake_latency(world)
    sections.append(
        f"## Wake\n\nAddress mode, {sleep.ITERATIONS} sleeping apps, each visited twice through the real WakeFunction "
        "(warm), in the same run as the webhook's launch for an opened MR and a bare DynamoDB `GetItem`:\n\n"
        + table(
            ["step", "p50", "compared with", "ratio"],
            [
                [
                    "visit that wakes the app (launch + page)",
                    ms(w["relaunch"]),
                    f"MR open through the webhook, {ms(w['opened'])}",
                    f"{w['relaunch'] / w['opened']:.2f}×",
                ],
                [
                    "visit while it wakes (page only)",
                    ms(w["waking"]),
                    f"bare GetItem, {ms(w['bare_read'])}",
                    f"{w['waking'] / w['bare_read']:.2f}×",
                ],
            ],
        )
        + "\n\nWakeFunction's cold init is in the first table (`WakeFunction`)."
    )

    with running_world(alb=True, REVIEW_APP_ACCESS="public") as world:
        print("review requests …", file=sys.stderr)
        q = start.review_request_head_start(world)
    idle_cost = q["rate_per_hour"] * q["sleep_after_minutes"] / 60
    sections.append(
        "## Awake before the reviewer arrives\n\n"
        f"Address mode, {q['pairs']} pairs of sleeping apps through the real handlers, on ECS's and the load "
        "balancer's real timeline (moved clock). One reviewer opens an app nobody asked them to review: the visit "
        f"wakes it. The other is asked to review (the merge request hook woke {q['woken_by_hook']} of "
        f"{q['pairs']}) and opens it {start.OPENS_AFTER} s later. The wait is from the visit to the app "
        "answering through its own rule:\n\n"
        + table(
            ["reviewer", "wait, p50"],
            [
                ["asked to review, opens it a minute later", f"{q['asked_wait_p50']:.0f} s"],
                ["opens it unasked (the waking page)", f"{q['unasked_wait_p50']:.0f} s"],
            ],
        )
        + f"\n\nA review request that nobody follows keeps the app awake for one `sleep_after` "
        f"({q['sleep_after_minutes']} min) plus its start: at this app's rate (${q['rate_per_hour']:.4f}/hour, "
        f"0.25 vCPU, 0.5 GB) that is about ${idle_cost:.4f} per such request."
    )

    with running_world(alb=True, REVIEW_APP_ACCESS="public") as world:
        print("time to address …", file=sys.stderr)
        t = start.time_to_address(world)
    ours = t["webhook_p50"] + t["running_p50"] + t["health_p50"]
    sections.append(
        f"## Time to address\n\nAddress mode, {t['iterations']} MRs opened through the real handlers. ECS's and the "
        "load balancer's own times are a real task's (its state-change events: 24.1 s from the event to "
        "`startedAt`) and two passing 10-second health checks, played on a moved clock (time-machine); our "
        "functions' times are measured, warm, p50:\n\n"
        + table(
            ["step", "p50"],
            [
                ["the MR event through WebhookFunction (claim, RunTask, note)", ms(t["webhook_p50"])],
                ["RUNNING through TaskEventsFunction (target in, health look, note edit)", ms(t["running_p50"])],
                ["a visit once the check passes (health look, the host's rule, note edit, page)", ms(t["health_p50"])],
                ["**ours in all**", f"**{ms(ours)}**"],
            ],
        )
        + f"\n\nThe MR's note said *The address answered {t['shown_p50']:.0f}s after the merge request event* (p50), "
        f"of which ECS and the load balancer took {t['ecs_and_alb']:.1f} s: ours is "
        f"{ours / t['shown_p50']:.1%} of it. The figure we own, RUNNING to the note edit, is "
        f"**{ms(t['running_p50'])}** against a target of 200 ms ({t['running_p50'] / 0.2:.2f}× the target)."
    )

    with running_world(alb=True, MAX_RUNNING_APPS=str(sleep.AWAKE), REVIEW_APP_ACCESS="public") as world:
        print("reconciler at 1,000 open MRs …", file=sys.stderr)
        r = sleep.reconciler_at_a_thousand(world)

    def calls(counted: dict, dynamodb: bool = False) -> str:
        return ", ".join(
            f"{k.split(':', 1)[1]}×{v}" if v > 1 else k.split(":", 1)[1]
            for k, v in sorted(counted.items())
            if k.startswith("dynamodb:") == dynamodb
        )

    def aws(counted: dict) -> int:
        return sum(v for k, v in counted.items() if not k.startswith("dynamodb:"))

    budget = 3 * r["awake"] + 20
    sections.append(
        f"## The reconciler at {r['open']:,} open MRs ({r['awake']} awake, address mode)\n\n"
        f"{r['records']:,} records: {r['awake']} apps awake for 30 minutes, the rest asleep (one put to sleep "
        "through the handlers, the others written as copies of it). The budget is "
        f"3 × awake + 20 = **{budget}** AWS calls, DynamoDB apart.\n\n"
        + table(
            ["run", "time", "AWS calls", "AWS operations", "DynamoDB"],
            [
                [
                    f"steady ({r['steady_summary'].get('sleep_candidates', 0)} candidates, all visited)",
                    ms(r["steady_seconds"]),
                    f"{aws(r['steady_calls'])} ({aws(r['steady_calls']) / budget:.2f}× budget)",
                    calls(r["steady_calls"]),
                    calls(r["steady_calls"], dynamodb=True),
                ],
                [
                    f"puts {r['summary'].get('put_to_sleep', 0)} idle apps to sleep",
                    ms(r["sleep_seconds"]),
                    f"{aws(r['sleep_calls'])} ({aws(r['sleep_calls']) / budget:.2f}× budget)",
                    calls(r["sleep_calls"]),
                    calls(r["sleep_calls"], dynamodb=True),
                ],
            ],
        )
        + f"\n\n`GetMetricData` calls per run: **{r['steady_calls'].get('cloudwatch:GetMetricData', 0)}** and "
        f"**{r['sleep_calls'].get('cloudwatch:GetMetricData', 0)}**. The second run is 20 minutes later on a moved "
        "clock (time-machine), with only half the apps visited since; putting an app to sleep costs a few calls of "
        "its own (DeleteRule, DeleteTargetGroup, StopTask, DeleteSchedule). Each `Scan` is one page of the records "
        "(1 MB a page). GitLab calls (one note edit, commit status and environment per app put to sleep) are not "
        "counted here. `ListTaskDefinitions` runs only for families without a running app: their revisions are "
        "retired when the app stops.\n\n"
        f"On the load balancer, this install's own target groups and rules: **{r['alb_after_sleep'][0]}** and "
        f"**{r['alb_after_sleep'][1]}** after the sleeps, **{r['alb_at_end'][0]}** and **{r['alb_at_end'][1]}** "
        "after the visits below (each woken app's target group is made at launch; its rule when it is healthy), "
        "plus the stack's catch-all rule and the wake function's target group.\n\n"
        f"A visit to an asleep MR's address through the catch-all rule (the local ALB to WakeFunction, warm): "
        f"**{ms(r['wake_visit_p50'])}** p50 to the waking page over {r['visits']} visits "
        f'({r["wake_pages"]} answered "Waking up").'
    )

    print("package size …", file=sys.stderr)
    sam = os.environ.get("SAM_CLI") or str(ROOT / ".venv-sam" / "bin" / "sam")
    s = size.measure(sam)
    if "skipped" in s:
        sections.append(f"## Package size\n\nSkipped: {s['skipped']}.")
    else:
        rows = [[name, f"{s['unzipped'][name]:.1f} MB", f"{s['zipped'][name]:.1f} MB"] for name in s["unzipped"]]
        sections.append(
            f"## Package size\n\nAfter `sam build` ({s['python']}, arm64):\n\n"
            + table(["function", "unzipped", "zipped"], rows)
        )

    sections.append(READING)
    report = "\n\n".join(sections) + "\n"
    print(report)
    (ROOT / "BENCHMARKS.md").write_text(report)


if __name__ == "__main__":
    main()

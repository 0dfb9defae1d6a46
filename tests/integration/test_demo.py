"""`make demo` runs the whole loop and its clock never runs backwards: the times the MR shows at
each step follow the previous step's. It shows what the README says: start phases and times,
what sleeping saved, the idle time as it was, every webhook it sends."""

from __future__ import annotations

import re
import subprocess
import sys

from local.lambda_runtime import ROOT


def test_the_demo_runs_and_its_times_only_move_forward():
    shown = subprocess.run([sys.executable, "-m", "local.demo"], cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert shown.returncode == 0, shown.stderr[-3000:]
    out = shown.stdout
    assert "Done: 0 tasks running, one note on the MR" in out
    assert "You can't open this review app" in out and "Waking up the review app for !1" in out
    assert "The app is told where it lives: REVIEW_APP_URL=https://awesome-project-mr1-p14." in out
    moments = re.findall(r"(?:live since|asleep since|ran from) (\d{4}-\d\d-\d\d \d\d:\d\d) UTC", out)
    assert len(moments) >= 5 and moments == sorted(moments), moments
    ran = re.findall(r"It ran from\s+(\S+ \S+) UTC to\s+(\S+ \S+) UTC", out.replace("│", " "))
    assert ran and all(start < end for start, end in ran), ran
    # An awake-versus-always-on comparison appears only with two different figures.
    for awake, whole in re.findall(
        r"about (\$[\d.]+);\s+[│ ]*running the whole time would have cost about (\$[\d.]+)", out
    ):
        assert awake != whole

    # Start phases, as the note shows them while the app starts and once it is live.
    flat = re.sub(r"\s*\n\s*(?:│ ?)?", " ", out)  # the demo wraps lines to the terminal's width
    assert "PENDING, pulling the image → deploying" in flat
    assert "Started in 41s: 10s waiting for capacity, 24s pulling the image, 7s starting" in flat
    assert "is still capacity" not in flat and "ignored (the task is still" not in flat
    # Twenty idle minutes are said as twenty, and sleeping two hours shows in the money.
    assert "nobody visited it for 20m" in flat and "after 20m idle" in flat
    money = r"awake [^,]+, about \$(\d+\.\d+); running the whole time would have cost about \$(\d+\.\d+)"
    pairs = re.findall(money, flat)
    assert any(float(awake) < float(whole) / 2 for awake, whole in pairs), pairs  # two hours asleep: half saved
    # Every webhook the demo sends is on the page (MR !2's opening and closing included).
    [sent] = re.findall(r"(\d+) webhooks sent, each shown above", out)
    assert out.count("GitLab → WebhookFunction") == int(sent) >= 10
    assert "GitLab → WebhookFunction (MR !2 opened)" in flat and "GitLab → WebhookFunction (MR !2 closed)" in flat

"""`make demo` runs the whole loop and its clock never runs backwards: the times the MR shows at
each step follow the previous step's."""

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

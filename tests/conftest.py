"""What the fault-injection suite tried, summed over the pytest-xdist workers and printed at the end."""

from __future__ import annotations

from collections import Counter

TALLY: Counter[str] = Counter()


def pytest_sessionfinish(session):
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: hand the counts to the controller
        workeroutput["tally"] = dict(TALLY)


def pytest_testnodedown(node, error):
    TALLY.update(getattr(node, "workeroutput", {}).get("tally", {}))


def pytest_terminal_summary(terminalreporter):
    if TALLY:
        figures = ", ".join(f"{name}: {count}" for name, count in sorted(TALLY.items()))
        terminalreporter.write_line(f"fault-injection suite: {figures}")

"""Summed over the pytest-xdist workers and checked or printed at the end: what the
fault-injection suite tried, and every AWS operation each function made, which its role (after
SAM's transform) must allow."""

from __future__ import annotations

from collections import Counter, defaultdict

import boto3
import pytest

from local.lambda_runtime import RUNNING_FUNCTION

TALLY: Counter[str] = Counter()
# Function logical id -> the IAM actions its AWS calls needed, over every test of this process.
AWS_CALLS: defaultdict[str, set[str]] = defaultdict(set)
_UNGRANTED: list[str] = []


def _record(model, params, **_):
    function = RUNNING_FUNCTION.get()
    if function:
        from tools.iam import iam_actions

        AWS_CALLS[function].update(iam_actions(model.service_model.service_name, model.name, params))


def pytest_sessionstart(session):
    boto3._get_default_session().events.register("before-call", _record)


def pytest_sessionfinish(session):
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: hand the counts and the calls to the controller
        workeroutput["tally"] = dict(TALLY)
        workeroutput["aws_calls"] = {function: sorted(actions) for function, actions in AWS_CALLS.items()}
        return
    if AWS_CALLS:
        from tools import iam

        try:
            _UNGRANTED.extend(iam.ungranted(AWS_CALLS, iam.grants(iam.transformed_template())))
        except SystemExit as exc:  # SAM's transform could not run: the check did not happen
            _UNGRANTED.append(f"(the roles could not be read: {exc})")
        if _UNGRANTED:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_testnodedown(node, error):
    output = getattr(node, "workeroutput", {})
    TALLY.update(output.get("tally", {}))
    for function, actions in output.get("aws_calls", {}).items():
        AWS_CALLS[function].update(actions)


def pytest_terminal_summary(terminalreporter):
    if TALLY:
        figures = ", ".join(f"{name}: {count}" for name, count in sorted(TALLY.items()))
        terminalreporter.write_line(f"fault-injection suite: {figures}")
    if AWS_CALLS:
        made = sum(len(actions) for actions in AWS_CALLS.values())
        terminalreporter.write_line(
            f"AWS operations the functions made: {made} (function, action) pairs over {len(AWS_CALLS)} functions; "
            f"{len(_UNGRANTED)} not allowed by the function's role"
        )
        for line in _UNGRANTED:
            terminalreporter.write_line(f"  NOT ALLOWED {line}", red=True)

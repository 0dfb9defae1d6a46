"""The IAM check `make lint` runs, and the one the suite runs on every AWS call a function made
(tests/conftest.py): both read the template after SAM's transform, against AWS's reference."""

from __future__ import annotations

import copy
import os

import pytest

from local.lambda_runtime import ROOT
from tools import iam


@pytest.fixture(scope="module")
def template() -> dict:
    os.environ.setdefault("SAM_CLI", str(ROOT / ".venv-sam" / "bin" / "sam"))
    return iam.transformed_template()


def test_every_statement_names_real_actions_and_condition_keys_that_apply(template):
    found = iam.check(template)
    assert found.problems == []
    assert found.statements >= 45 and found.actions >= 80 and found.condition_keys >= 20


def test_a_misspelt_action_and_a_key_an_action_ignores_are_reported(template):
    broken = copy.deepcopy(template)
    policy = broken["Resources"]["WebhookFunctionRole"]["Properties"]["Policies"][0]["PolicyDocument"]
    policy["Statement"].append(
        {
            "Sid": "Broken",
            "Effect": "Allow",
            "Action": ["ecs:RunTasks", "ecs:RegisterTaskDefinition"],
            "Resource": "*",
            "Condition": {"ArnEquals": {"ecs:cluster": "arn:aws:ecs:us-east-1:111122223333:cluster/x"}},
        }
    )
    problems = iam.check(broken).problems
    assert any("ecs:RunTasks is not an action of ecs" in p for p in problems), problems
    assert any(
        "condition key ecs:cluster (ArnEquals) does not apply to ecs:registertaskdefinition" in p for p in problems
    )


def test_a_call_the_role_does_not_allow_is_named(template):
    allowed = iam.grants(template)
    calls = {"ReconcileFunction": {"scheduler:ListSchedules", "ecs:ListTasks"}, "AuthFunction": {"ecs:RunTask"}}
    assert iam.ungranted(calls, allowed) == ["AuthFunction: ecs:RunTask"]
    without = copy.deepcopy(template)
    statements = without["Resources"]["ReconcileFunctionRole"]["Properties"]["Policies"][0]["PolicyDocument"]
    statements["Statement"] = [s for s in statements["Statement"] if s.get("Sid") != "FindRunningAppsWithoutADeadline"]
    assert iam.ungranted(calls, iam.grants(without)) == [
        "AuthFunction: ecs:RunTask",
        "ReconcileFunction: scheduler:ListSchedules",  # as it was before the suite's check found it
    ]


def test_an_api_call_is_the_iam_actions_it_needs():
    writes = {"TransactItems": [{"Put": {}}, {"ConditionCheck": {}}, {"Update": {}}]}
    assert iam.iam_actions("dynamodb", "TransactWriteItems", writes) == [
        "dynamodb:ConditionCheckItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
    ]
    assert iam.iam_actions("elbv2", "CreateRule", {}) == ["elasticloadbalancing:CreateRule"]
    assert iam.iam_actions("sts", "GetCallerIdentity", {}) == []

"""IAM, checked against AWS's own reference (the Service Authorization Reference, as
policy_sentry bundles it, offline), on the template after SAM's transform (what CloudFormation
deploys, from local/sam_transform.py run with .venv-sam's samtranslator).

    python -m tools.iam        # make lint: every statement's actions and condition keys exist,
                               # and each condition key applies to every action of its statement

`grants()` gives each function's allowed actions (its role's inline statements and its managed
policies): the test suite compares them with every AWS operation each function made.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# AWS managed policies the roles attach, with the actions they allow (AWS's published documents).
AWS_MANAGED = {
    "AWSLambdaBasicExecutionRole": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
    "AWSLambdaVPCAccessExecutionRole": [
        "logs:CreateLogGroup",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "ec2:CreateNetworkInterface",
        "ec2:DescribeNetworkInterfaces",
        "ec2:DescribeSubnets",
        "ec2:DeleteNetworkInterface",
        "ec2:AssignPrivateIpAddresses",
        "ec2:UnassignPrivateIpAddresses",
    ],
}
# Keys every service takes (IAM's global condition context keys).
GLOBAL_KEYS = re.compile(
    r"aws:(SourceArn|SourceAccount|SourceOrgID|PrincipalArn|PrincipalAccount|PrincipalOrgID|PrincipalTag/.+|"
    r"RequestedRegion|SecureTransport|CalledVia|CalledViaFirst|CalledViaLast|ViaAWSService|SourceVpc|SourceVpce|"
    r"SourceIp|CurrentTime|EpochTime|MultiFactorAuthPresent|userid|username|PrincipalType|PrincipalIsAWSService|"
    r"PrincipalServiceName|ResourceAccount|ResourceOrgID|ResourceOrgPaths)"
)
# botocore's service names where IAM's prefix differs.
IAM_PREFIX = {"elbv2": "elasticloadbalancing", "resourcegroupstaggingapi": "tag"}
_TRANSACT = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem", "ConditionCheck": "ConditionCheckItem"}


def transformed_template() -> dict[str, Any]:
    python = Path(os.environ.get("SAM_CLI", ROOT / ".venv-sam" / "bin" / "sam")).with_name("python")
    if not python.exists():
        raise SystemExit("aws-sam-cli is not installed in .venv-sam: make lint installs it")
    done = subprocess.run(
        [str(python), "local/sam_transform.py"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    if done.returncode != 0:
        raise SystemExit(f"SAM's transform failed: {done.stderr[-2000:]}")
    return dict(json.loads(done.stdout))


def _branches(value: Any) -> Iterator[Any]:
    """Every value a template expression may take (both sides of each Fn::If)."""
    if isinstance(value, dict) and "Fn::If" in value:
        for side in value["Fn::If"][1:]:
            yield from _branches(side)
    elif isinstance(value, dict) and value.get("Ref") == "AWS::NoValue":
        return
    elif isinstance(value, list):
        for item in value:
            yield from _branches(item)
    else:
        yield value


def _documents(properties: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for policy in _branches(properties.get("Policies", [])):
        if isinstance(policy, dict) and "PolicyDocument" in policy:
            yield policy.get("PolicyName", "?"), policy["PolicyDocument"]
    if "PolicyDocument" in properties:
        yield properties.get("PolicyName", properties.get("ManagedPolicyName", "")), properties["PolicyDocument"]


def statements(template: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, statement) for every identity policy statement the stack makes."""
    for logical, resource in template["Resources"].items():
        if resource["Type"] not in ("AWS::IAM::Role", "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            continue
        for name, document in _documents(resource.get("Properties", {})):
            for index, statement in enumerate(_branches(document.get("Statement", []))):
                yield f"{logical}/{name}/{statement.get('Sid') or index}", statement


def _actions(statement: dict[str, Any]) -> list[str]:
    return [str(a) for a in _branches(statement.get("Action", []))]


@cache
def _known(service: str) -> dict[str, set[str]]:
    """IAM action name -> the condition keys it takes, for one service prefix."""
    from policy_sentry.querying.actions import get_action_data, get_actions_for_service

    known: dict[str, set[str]] = {}
    for full in get_actions_for_service(service):
        name = full.split(":", 1)[1]
        entries = get_action_data(service, name).get(service, [])
        known[name.lower()] = {key for entry in entries for key in entry.get("condition_keys", [])}
    return known


def _key_matches(key: str, pattern: str) -> bool:
    regex = re.escape(pattern).replace(re.escape("${TagKey}"), ".+")
    return re.fullmatch(regex, key, re.IGNORECASE) is not None


@dataclass
class Findings:
    statements: int = 0
    actions: int = 0
    condition_keys: int = 0
    problems: list[str] = field(default_factory=list)


def check(template: dict[str, Any]) -> Findings:
    found = Findings()
    for where, statement in statements(template):
        found.statements += 1
        matched: list[tuple[str, set[str]]] = []  # (action, its keys) for each action the statement names
        for action in _actions(statement):
            found.actions += 1
            service, _, name = action.partition(":")
            known = _known(service.lower())
            if not known:
                found.problems.append(f"{where}: {action}: no service {service!r} in AWS's reference")
                continue
            names = [n for n in known if fnmatch.fnmatch(n, name.lower())]
            if not names:
                found.problems.append(f"{where}: {action} is not an action of {service} in AWS's reference")
            matched += [(f"{service}:{n}", known[n]) for n in names]
        for operator, block in (statement.get("Condition") or {}).items():
            for key in block:
                found.condition_keys += 1
                if GLOBAL_KEYS.fullmatch(key):
                    continue
                refusing = [a for a, keys in matched if not any(_key_matches(key, k) for k in keys)]
                if refusing:
                    found.problems.append(
                        f"{where}: condition key {key} ({operator}) does not apply to {', '.join(refusing)}: "
                        "the statement never allows those"
                    )
    return found


def grants(template: dict[str, Any]) -> dict[str, list[str]]:
    """Each Lambda function's allowed action patterns (Allow statements of its role and its
    managed policies, every Fn::If branch counted: the suite runs every mode)."""
    resources = template["Resources"]
    allowed: dict[str, list[str]] = {}
    for logical, resource in resources.items():
        if resource["Type"] != "AWS::Lambda::Function":
            continue
        role = resources[resource["Properties"]["Role"]["Fn::GetAtt"][0]]["Properties"]
        actions = [
            action
            for _, document in _documents(role)
            for statement in _branches(document.get("Statement", []))
            if statement.get("Effect") == "Allow"
            for action in _actions(statement)
        ]
        for arn in _branches(role.get("ManagedPolicyArns", [])):
            if isinstance(arn, dict) and "Ref" in arn:
                managed = resources[arn["Ref"]]["Properties"]
                actions += [
                    action
                    for _, document in _documents(managed)
                    for statement in _branches(document.get("Statement", []))
                    if statement.get("Effect") == "Allow"
                    for action in _actions(statement)
                ]
            else:
                name = str(arn.get("Fn::Sub", arn) if isinstance(arn, dict) else arn).rsplit("/", 1)[-1]
                actions += AWS_MANAGED[name]
        allowed[logical] = actions
    return allowed


def iam_actions(service: str, operation: str, params: dict[str, Any]) -> list[str]:
    """The IAM actions an API call needs (a DynamoDB transaction: those of its items)."""
    prefix = IAM_PREFIX.get(service, service)
    if (service, operation) == ("dynamodb", "TransactWriteItems"):
        kinds = {kind for item in params.get("TransactItems", []) for kind in item}
        return sorted(f"dynamodb:{_TRANSACT[k]}" for k in kinds if k in _TRANSACT)
    if (service, operation) == ("dynamodb", "TransactGetItems"):
        return ["dynamodb:GetItem"]
    if (service, operation) == ("sts", "GetCallerIdentity"):
        return []  # needs no permission
    return [f"{prefix}:{operation}"]


def ungranted(calls: dict[str, Iterable[str]], allowed: dict[str, list[str]]) -> list[str]:
    """Each "Function: service:Action" the function made that its role does not allow."""
    missing = []
    for function, actions in sorted(calls.items()):
        patterns = [p.lower() for p in allowed.get(function, [])]
        for action in sorted(set(actions)):
            if not any(fnmatch.fnmatch(action.lower(), p) for p in patterns):
                missing.append(f"{function}: {action}")
    return missing


def main() -> int:
    template = transformed_template()
    found = check(template)
    print(
        f"IAM against AWS's Service Authorization Reference (policy_sentry): {found.statements} statements, "
        f"{found.actions} actions, {found.condition_keys} condition keys; {len(found.problems)} problems"
    )
    for problem in found.problems:
        print(f"  {problem}")
    return 1 if found.problems else 0


if __name__ == "__main__":
    sys.exit(main())

"""`make doctor`: check a deployed install from the operator's shell, and say how to fix what fails.

    make doctor                      # the stack named in samconfig.toml (gitlab-review-apps)
    make doctor STACK=my-review-apps
    make doctor PROJECT=group/name   # and one project's setup (as make onboard would, changing nothing)
    make doctor LOCAL=1              # the install `make local-services` runs

Reads the stack's parameters and outputs, then checks what the install relies on but does not
create: its SSM parameters exist and decrypt, the cluster, subnets and security groups exist, the
listed roles exist and carry their `review-apps:projects` tag, in address mode the listener's
certificate covers `*.<ReviewDomain>` and a shared listener has room for `MaxRunningApps` awake
apps, GitLab answers the bot's token and its scopes suffice, and
the webhook URL refuses an unsigned request with 401. Exit code 1 if anything failed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

import requests

from tools.install import Check, Clients, Install, InstallError, error_code, stack_name
from tools.install import report as _report

PROJECTS_TAG = "review-apps:projects"


_code = error_code


def _csv(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def run(stack: str, aws: Clients, http: requests.Session) -> list[Check]:
    try:  # no credentials or no Region is not a missing stack: that reaches main() and says so
        install = Install.read(stack, aws)
    except InstallError as exc:
        return [Check(False, exc.what, exc.fix)]
    params, outputs, status = install.params, install.outputs, install.status
    checks = [
        Check(
            status.endswith("_COMPLETE") and "ROLLBACK" not in status,
            f"stack {stack} is {status}",
            "see its events: aws cloudformation describe-stack-events --stack-name " + stack,
        )
    ]
    address, sign_in = install.address_mode, install.sign_in
    wanted = ["WebhookUrl", "RecordsTableName"] + (["SignInCallbackUrl"] if sign_in else [])
    missing = [name for name in wanted if not outputs.get(name)]
    checks.append(
        Check(
            not missing,
            "outputs " + (", ".join(wanted) if not missing else f"missing {missing}"),
            "sam deploy again: the template makes them",
        )
    )
    checks += _parameters(aws, params, sign_in)
    checks += _network(aws, params)
    checks += _roles(aws, params)
    if address:
        checks += _certificate(aws, params)
    if params.get("AlbListenerArn"):
        checks.append(_listener_room(aws, params))
    checks.append(_gitlab(aws, http, params))
    if params.get("GitLabReadTokenParameterName"):
        checks.append(_gitlab(aws, http, params, "GitLabReadTokenParameterName"))
    if outputs.get("WebhookUrl"):
        checks.append(_webhook(http, outputs["WebhookUrl"]))
    checks.append(_settings(aws, stack))
    return checks


def _settings(aws: Clients, stack: str) -> Check:
    """Each function's configuration, as deployed, loaded by the functions' own settings code:
    what the template's patterns and rules can't refuse (e.g. DefaultTtl=5h30m with MaxTtl=4h)
    would fail every invocation at cold start."""
    from local.lambda_runtime import load_template
    from review_apps.settings import SettingsError, load_settings

    try:
        pages = aws.cloudformation.get_paginator("list_stack_resources").paginate(StackName=stack)
        functions = [
            (r["LogicalResourceId"], r["PhysicalResourceId"])
            for page in pages
            for r in page["StackResourceSummaries"]
            if r["ResourceType"] == "AWS::Lambda::Function"
        ]
        refused = []
        for logical, physical in functions:
            configuration = aws.__getattr__("lambda").get_function_configuration(FunctionName=physical)
            try:
                load_settings(configuration.get("Environment", {}).get("Variables", {}))
            except SettingsError as exc:
                refused.append((logical, str(exc)))
    except Exception as exc:
        return Check(
            False, f"the functions' settings could not be read: {_code(exc)}", "lambda:GetFunctionConfiguration"
        )
    if not refused:
        return Check(bool(functions), f"the stack's {len(functions)} functions load their settings", "sam deploy")
    logical, message = refused[0]
    variables = load_template()["Globals"]["Function"]["Environment"]["Variables"]
    named = [word.strip("(),:") for word in message.split()]
    parameters = [variables[w]["Ref"] for w in named if isinstance(variables.get(w), dict) and "Ref" in variables[w]]
    return Check(
        False,
        f"{len(refused)} of {len(functions)} functions refuse their settings and would fail every call; "
        f"{logical}: {message}",
        "sam deploy --parameter-overrides " + " ".join(f"{p}=…" for p in dict.fromkeys(parameters))
        if parameters
        else "sam deploy with corrected parameters",
    )


def _parameters(aws: Clients, params: dict[str, str], sign_in: bool) -> list[Check]:
    names = {
        "GitLabTokenParameterName": "glpat-… (the bot user token, scope api)",
        "GitLabReadTokenParameterName": "glpat-… (a token with scope read_api, for sign-in)",
        "WebhookSecretParameterName": "$(openssl rand -hex 32)",
        "WebhookSigningSecretParameterName": "whsec_… from GitLab",
    }
    if sign_in:
        names["GitLabOAuthParameterName"] = '{"application_id": "…", "secret": "…"}'
    checks = []
    for key, example in names.items():
        name = params.get(key, "")
        if not name:
            continue
        fix = f"aws ssm put-parameter --name {name} --type SecureString --value '{example}'"
        try:
            value = aws.ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"]
        except Exception as exc:
            checks.append(Check(False, f"SSM parameter {name}: {_code(exc)}", fix))
            continue
        if key == "GitLabOAuthParameterName":
            try:
                data = json.loads(value)
                usable = bool(data.get("application_id")) and bool(data.get("secret"))
            except (ValueError, AttributeError):
                usable = False
            if not usable:
                checks.append(Check(False, f"SSM parameter {name} is not JSON with application_id and secret", fix))
                continue
        checks.append(Check(True, f"SSM parameter {name} exists and decrypts"))
    return checks


def _network(aws: Clients, params: dict[str, str]) -> list[Check]:
    checks = []
    cluster = params.get("ClusterName", "")
    try:
        clusters = aws.ecs.describe_clusters(clusters=[cluster])["clusters"]
        active = bool(clusters) and clusters[0].get("status") == "ACTIVE"
    except Exception:
        active = False
    checks.append(
        Check(
            active,
            f"ECS cluster {cluster} " + ("is active" if active else "does not exist"),
            f"aws ecs create-cluster --cluster-name {cluster} --capacity-providers FARGATE FARGATE_SPOT",
        )
    )
    for key, call, field, kind in (
        ("Subnets", "describe_subnets", "SubnetIds", "subnet"),
        ("SecurityGroups", "describe_security_groups", "GroupIds", "security group"),
    ):
        wanted = _csv(params.get(key, ""))
        missing = []
        for item in wanted:
            try:
                getattr(aws.ec2, call)(**{field: [item]})
            except Exception:
                missing.append(item)
        checks.append(
            Check(
                not missing and bool(wanted),
                f"{kind}s {', '.join(wanted) or '(none given)'}" + (f": {missing} missing" if missing else " exist"),
                f"sam deploy --guided with existing {kind}s of the cluster's VPC ({key})",
            )
        )
    return checks


def _roles(aws: Clients, params: dict[str, str]) -> list[Check]:
    checks = []
    for key in ("ReviewAppTaskRoleArns", "ReviewAppExecutionRoleArns"):
        for arn in _csv(params.get(key, "")):
            name = arn.rsplit("/", 1)[-1]
            try:
                aws.iam.get_role(RoleName=name)
                tags = {t["Key"]: t["Value"] for t in aws.iam.list_role_tags(RoleName=name)["Tags"]}
            except Exception as exc:
                checks.append(Check(False, f"role {arn}: {_code(exc)}", f"create it, or take it out of {key}"))
                continue
            tagged = PROJECTS_TAG in tags
            checks.append(
                Check(
                    tagged,
                    f"role {arn} "
                    + (
                        f"is tagged {PROJECTS_TAG}={tags[PROJECTS_TAG]}"
                        if tagged
                        else f"has no {PROJECTS_TAG} tag: no project may use it"
                    ),
                    f"aws iam tag-role --role-name {name} --tags Key={PROJECTS_TAG},Value='<paths, ids, group/ or *>'",
                )
            )
    return checks


def _certificate(aws: Clients, params: dict[str, str]) -> list[Check]:
    domain, listener = params.get("ReviewDomain", ""), params.get("AlbListenerArn", "")
    wildcard = f"*.{domain}"
    fix = (
        f"aws acm request-certificate --domain-name '{wildcard}' --validation-method DNS, then add it to the "
        "listener (aws elbv2 add-listener-certificates)"
    )
    try:
        if listener:
            [found] = aws.elbv2.describe_listeners(ListenerArns=[listener])["Listeners"]
            certificates = [c["CertificateArn"] for c in found.get("Certificates", [])]
            certificates += [
                c["CertificateArn"]
                for c in aws.elbv2.describe_listener_certificates(ListenerArn=listener).get("Certificates", [])
                if c["CertificateArn"] not in certificates
            ]
        else:
            certificates = [params.get("AlbCertificateArn", "")]
        names = set()
        for arn in certificates:
            described = aws.acm.describe_certificate(CertificateArn=arn)["Certificate"]
            names |= {described.get("DomainName", ""), *described.get("SubjectAlternativeNames", [])}
    except Exception as exc:
        return [Check(False, f"listener {listener or '(created by the stack)'}: {_code(exc)}", fix)]
    covered = wildcard in names
    return [Check(covered, f"the listener's certificate {'covers' if covered else 'does not cover'} {wildcard}", fix)]


def _listener_room(aws: Clients, params: dict[str, str]) -> Check:
    """A shared listener: whether its quotas leave room for MaxRunningApps awake apps (one rule and
    one target group each) plus the stack's catch-all rule and wake target group, beside what
    others have on it (rules for hosts outside *.ReviewDomain, and their target groups)."""
    listener, domain = params["AlbListenerArn"], params.get("ReviewDomain", "")
    cap = int(params.get("MaxRunningApps") or 0)
    try:
        limits = {item["Name"]: int(item["Max"]) for item in aws.elbv2.describe_account_limits()["Limits"]}
        rules: list[dict[str, Any]] = []
        marker: dict[str, str] = {}
        while True:
            page = aws.elbv2.describe_rules(ListenerArn=listener, PageSize=400, **marker)
            rules += page["Rules"]
            if not page.get("NextMarker"):
                break
            marker = {"Marker": page["NextMarker"]}
    except Exception as exc:
        return Check(False, f"listener {listener}: {_code(exc)}", "check AlbListenerArn")

    def ours(rule: dict[str, Any]) -> bool:
        hosts = [
            host
            for condition in rule.get("Conditions", [])
            if condition.get("Field") == "host-header"
            for host in condition.get("HostHeaderConfig", {}).get("Values", [])
        ]
        return bool(hosts) and all(host == f"*.{domain}" or host.endswith(f".{domain}") for host in hosts)

    theirs = [rule for rule in rules if not rule.get("IsDefault") and not ours(rule)]
    groups = {
        action["TargetGroupArn"]
        for rule in theirs
        for action in rule.get("Actions", [])
        if action.get("Type") == "forward" and action.get("TargetGroupArn")
    }
    room = (
        min(
            limits.get("rules-per-application-load-balancer", 100) - len(theirs),
            limits.get("target-groups-per-application-load-balancer", 100) - len(groups),
        )
        - 1
    )  # the stack's catch-all rule and the wake function's target group
    return Check(
        0 < cap <= room,
        f"the listener has room for {room} awake review apps beside others' {len(theirs)} rules and "
        f"{len(groups)} target groups; MaxRunningApps is {cap}",
        f"sam deploy --parameter-overrides MaxRunningApps={max(room, 1)}, or raise the ALB's rules quota "
        "(Service Quotas: Rules per Application Load Balancer)",
    )


def _gitlab(
    aws: Clients, http: requests.Session, params: dict[str, str], key: str = "GitLabTokenParameterName"
) -> Check:
    """GitLab takes the token in the SSM parameter `key` names, with the scope it needs: `api` for
    the bot's, `read_api` (or `api`) for sign-in's read-only one."""
    url = params.get("GitLabUrl", "").rstrip("/")
    bot = key == "GitLabTokenParameterName"
    whose, needed = ("the bot's token", {"api"}) if bot else ("the read-only token", {"read_api", "api"})
    fix = (
        "a bot user's personal (or group) access token with scope api, in "
        if bot
        else "a token with scope read_api, in "
    ) + params.get(key, "")
    try:
        token = aws.ssm.get_parameter(Name=params.get(key, ""), WithDecryption=True)
        answer = http.get(
            f"{url}/api/v4/personal_access_tokens/self",
            timeout=10,
            headers={"PRIVATE-TOKEN": token["Parameter"]["Value"]},
        )
    except Exception as exc:
        return Check(
            False,
            f"GitLab at {url} did not answer ({type(exc).__name__})",
            "check GitLabUrl, and that this machine (and the functions) reach it",
        )
    if answer.status_code != 200:
        return Check(False, f"GitLab at {url} refused {whose} ({answer.status_code})", fix)
    scopes = set(answer.json().get("scopes") or [])
    ok = bool(scopes & needed) and answer.json().get("active", True)
    shown = ", ".join(sorted(scopes)) or "none"
    if ok:
        return Check(True, f"GitLab at {url} accepts {whose} (scopes: {shown})")
    wanted = "api" if bot else "read_api"
    return Check(False, f"GitLab at {url}: {whose} has scopes {shown}; it needs {wanted}", fix)


def _webhook(http: requests.Session, url: str) -> Check:
    try:
        answer = http.post(
            url,
            data=b"{}",
            timeout=10,
            headers={"Content-Type": "application/json", "X-Gitlab-Event": "Merge Request Hook"},
        )
    except Exception as exc:
        return Check(False, f"webhook {url} did not answer ({type(exc).__name__})", "is the stack's API deployed?")
    return Check(
        answer.status_code == 401,
        f"webhook {url} answers an unsigned request with {answer.status_code}",
        "it must be 401: is this the stack's WebhookUrl output?",
    )


def report(stack: str, checks: list[Check]) -> str:
    return _report(f"make doctor: stack {stack}", checks)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="doctor", description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", default="", help="the stack name (default: samconfig.toml's)")
    parser.add_argument("--project", default="", help="also check one project's setup (group/name)")
    parser.add_argument("--local", action="store_true", help="the install `make local-services` runs")
    args = parser.parse_args(argv)
    import boto3
    from botocore.exceptions import BotoCoreError

    http = requests.Session()
    if args.local:
        from local.services import point_at_local_services

        http = point_at_local_services()
    stack = args.stack or ("review-apps-local" if args.local else stack_name())
    try:
        checks = run(stack, Clients(boto3.client), http)
        if args.project and all(c.ok for c in checks[:1]):
            from tools.onboard import Onboarding

            install = Install.read(stack, Clients(boto3.client))
            maintainer = os.environ.pop("MAINTAINER_TOKEN", "")
            checks += Onboarding(install, args.project.strip("/"), maintainer_token=maintainer, change=False).run()
    except BotoCoreError as exc:
        print(f"doctor: this needs AWS credentials and a Region for the install's account: {exc}", file=sys.stderr)
        return 2
    print(report(stack, checks))
    return 0 if all(c.ok for c in checks) else 1


if __name__ == "__main__":
    raise SystemExit(main())

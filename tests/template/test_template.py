"""template.yaml: it lints, its handlers resolve, its rule matches the events it must, and its
IAM stays least-privilege."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from moto.events.models import EventPattern

from local.lambda_runtime import ROOT, function_properties, load_handler, load_template

TEMPLATE = load_template()
RESOURCES = TEMPLATE["Resources"]
FUNCTIONS = [name for name, r in RESOURCES.items() if r["Type"] == "AWS::Serverless::Function"]
CONTRACT = {
    "GITLAB_URL",
    "GITLAB_TOKEN_PARAMETER",
    "WEBHOOK_SECRET_PARAMETER",
    "TABLE_NAME",
    "CLUSTER",
    "SUBNETS",
    "SECURITY_GROUPS",
    "ASSIGN_PUBLIC_IP",
    "DEFAULT_TTL",
    "MAX_TTL",
    "INSTALL_ID",
    "SCHEDULE_GROUP",
    "SCHEDULER_ROLE_ARN",
    "TASK_ROLE_ARNS",
    "EXECUTION_ROLE_ARNS",
}


def _tool(name: str, env_var: str | None = None) -> str:
    candidates = [
        os.environ.get(env_var or "", ""),
        str(Path(sys.executable).with_name(name)),
        str(ROOT / ".venv-sam" / "bin" / name),
        shutil.which(name) or "",
    ]
    for candidate in candidates:
        if candidate and Path(candidate).exists():
            return candidate
    pytest.fail(f"{name} is not installed; run `make test`, which installs it")


def test_cfn_lint_passes():
    result = subprocess.run([_tool("cfn-lint"), "template.yaml"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_sam_validate_lint_passes():
    env = {**os.environ, "SAM_CLI_TELEMETRY": "0"}
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        env.pop(name, None)
    result = subprocess.run(
        [_tool("sam", "SAM_CLI"), "validate", "--lint"], cwd=ROOT, capture_output=True, text=True, env=env
    )
    assert result.returncode == 0 and "is a valid SAM Template" in result.stdout, result.stdout + result.stderr


def test_functions_use_a_current_runtime_on_arm64():
    for name in FUNCTIONS:
        props = function_properties(name, TEMPLATE)
        assert props["Runtime"] in ("python3.13", "python3.14") and props["Architectures"] == ["arm64"]


def test_webhook_answers_before_gitlab_gives_up():
    assert function_properties("WebhookFunction", TEMPLATE)["Timeout"] < 10


@pytest.mark.parametrize("name", FUNCTIONS)
def test_handlers_resolve_as_the_template_names_them(name, monkeypatch):
    for variable in CONTRACT:
        monkeypatch.setenv(variable, "https://gitlab.example.com" if variable == "GITLAB_URL" else "x")
    monkeypatch.setenv("DEFAULT_TTL", "30m")
    monkeypatch.setenv("MAX_TTL", "4h")
    monkeypatch.setenv("ASSIGN_PUBLIC_IP", "DISABLED")
    monkeypatch.setenv("INSTALL_ID", "review-apps")
    assert callable(load_handler(name))


def test_configuration_contract_is_what_the_functions_get():
    variables = set(TEMPLATE["Globals"]["Function"]["Environment"]["Variables"])
    assert variables >= CONTRACT
    settings_source = (ROOT / "functions/review_apps/settings.py").read_text()
    read = set(re.findall(r'(?:env, |env\.get\()"([A-Z_]+)"', settings_source))
    assert read >= CONTRACT
    lambda_sets = {"AWS_REGION", "AWS_DEFAULT_REGION"}  # the Lambda runtime's own
    assert read - lambda_sets <= variables, f"settings read variables the template does not set: {read - variables}"


def test_every_function_has_samples_for_what_it_accepts():
    samples = {p.name for p in (ROOT / "events").glob("*.json")}
    for prefix in (
        "webhook_merge_request_",
        "webhook_pipeline_",
        "webhook_note",
        "task_running",
        "task_stopped_",
        "reconcile_schedule",
        "wake_",
        "auth_authorize",
        "auth_callback",
        "auth_token",
        "auth_userinfo",
        "auth_discovery",
    ):
        assert any(s.startswith(prefix) for s in samples), prefix


def test_webhook_samples_hit_the_templates_route():
    event = RESOURCES["WebhookFunction"]["Properties"]["Events"]["Webhook"]["Properties"]
    for sample in (ROOT / "events").glob("webhook_*.json"):
        request = json.loads(sample.read_text())
        assert request["routeKey"] == f"{event['Method']} {event['Path']}", sample.name


def _rule_pattern(account: str, region: str) -> dict:
    pattern = json.loads(
        json.dumps(RESOURCES["TaskEventsFunction"]["Properties"]["Events"]["TaskStateChange"]["Properties"]["Pattern"])
    )
    [cluster] = pattern["detail"]["clusterArn"]
    template = cluster["Sub"]
    pattern["detail"]["clusterArn"] = [
        template.replace("${AWS::Partition}", "aws")
        .replace("${AWS::Region}", region)
        .replace("${AWS::AccountId}", account)
        .replace("${ClusterName}", "review-apps")
    ]
    return pattern


def _task_samples() -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((ROOT / "events").glob("task_*.json"))]


def test_rule_matches_every_task_sample():
    for event in _task_samples():
        pattern = EventPattern.load(json.dumps(_rule_pattern(event["account"], event["region"])))
        assert pattern.matches_event(event), event["detail"]["lastStatus"]


@pytest.mark.parametrize(
    "change",
    [
        {"detail-type": "ECS Container Instance State Change"},
        {"source": "aws.ec2"},
        {"detail": {"clusterArn": "arn:aws:ecs:us-east-1:111122223333:cluster/production"}},
        {"detail": {"group": "family:shop-web"}},
        {"detail": {"group": "service:shop"}},
    ],
)
def test_rule_ignores_what_is_not_ours(change):
    event = _task_samples()[0]
    for key, value in change.items():
        if isinstance(value, dict):
            event[key] = {**event[key], **value}
        else:
            event[key] = value
    pattern = EventPattern.load(json.dumps(_rule_pattern("111122223333", "us-east-1")))
    assert not pattern.matches_event(event)


LAUNCH_POLICY = "LaunchReviewAppsPolicy"
ROUTE_POLICY = "RouteReviewAppsPolicy"
ADDRESS_MODE_ONLY = {"If": ["UseAddresses", {"Ref": ROUTE_POLICY}, {"Ref": "AWS::NoValue"}]}


def _statements(name: str) -> list[dict]:
    """A function's inline statements plus those of the shared policies it attaches (the route
    policy's only in address mode)."""
    statements = []
    for policy in RESOURCES[name]["Properties"]["Policies"]:
        if policy == {"Ref": LAUNCH_POLICY}:
            statements += _policy_statements(LAUNCH_POLICY)
        elif policy in (ADDRESS_MODE_ONLY, {"Ref": ROUTE_POLICY}):  # its sign-in statement: {"If": [SignInOn, …]}
            statements += _route_statements()
        elif "Statement" in policy:  # a statement only in address mode is {"If": ["UseAddresses", statement, NoValue]}
            statements += [st["If"][1] if "If" in st else st for st in policy["Statement"]]
    return statements


def _policy_statements(policy: str) -> list[dict]:
    """A managed policy's statements, a conditional one ({"If": [condition, statement, NoValue]}) as its statement."""
    return [st["If"][1] if "If" in st else st for st in RESOURCES[policy]["Properties"]["PolicyDocument"]["Statement"]]


def _route_statements() -> list[dict]:
    return _policy_statements(ROUTE_POLICY)


def _actions(name: str) -> set[str]:
    return {a for s in _statements(name) for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])}


def test_no_wildcard_actions_and_scoped_conditions():
    for name in FUNCTIONS:
        for statement in _statements(name):
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            assert all("*" not in action for action in actions), statement
    launch = {s["Sid"]: s for s in _policy_statements(LAUNCH_POLICY)}
    assert (
        launch["PassOnlyListedTaskRoles"]["Condition"]
        == launch["PassOnlyListedExecutionRoles"]["Condition"]
        == {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}}
    )
    assert launch["TagOnCreate"]["Condition"]["StringEquals"]["ecs:CreateAction"] == [
        "RunTask",
        "RegisterTaskDefinition",
    ]
    run, stop = launch["RunOwnFamiliesTaggedAsOurs"], launch["StopOnlyOwnTasks"]
    assert "ecs:cluster" in run["Condition"]["ArnEquals"]
    assert "task-definition/review-app_${AWS::StackName}_*" in run["Resource"]["Sub"]
    assert run["Condition"]["StringEquals"] == {"aws:RequestTag/review-apps:install": {"Ref": "AWS::StackName"}}
    assert "ecs:cluster" in stop["Condition"]["ArnEquals"]
    assert stop["Condition"]["StringEquals"] == {"aws:ResourceTag/review-apps:install": {"Ref": "AWS::StackName"}}
    scheduler_role = RESOURCES["DeadlineSchedulerRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    assert scheduler_role[0]["Action"] == "ecs:StopTask"
    assert scheduler_role[0]["Condition"]["StringEquals"] == stop["Condition"]["StringEquals"]


def test_only_the_webhook_and_the_reconciler_can_launch():
    """Task events only report; launching (and passing roles) is for the two that start apps."""
    launching = {"ecs:RunTask", "iam:PassRole", "ecs:RegisterTaskDefinition"}
    assert launching <= _actions("WebhookFunction")
    assert launching <= _actions("ReconcileFunction")
    assert not ({"ecs:StopTask", "ecs:RunTask", "ecs:RegisterTaskDefinition"}) & _actions("TaskEventsFunction")
    # The one role task events may pass is the deadline's, to Scheduler, when it moves a deadline.
    passed = [s for s in _statements("TaskEventsFunction") if s["Action"] == "iam:PassRole"]
    assert [s["Resource"] for s in passed] == [{"GetAtt": "DeadlineSchedulerRole.Arn"}]
    assert passed[0]["Condition"] == {"StringEquals": {"iam:PassedToService": "scheduler.amazonaws.com"}}


def test_the_webhook_is_throttled_and_its_concurrency_reserved():
    api = RESOURCES["WebhookApi"]["Properties"]["DefaultRouteSettings"]
    assert api == {
        "ThrottlingRateLimit": {"Ref": "WebhookRateLimit"},
        "ThrottlingBurstLimit": {"Ref": "WebhookBurstLimit"},
    }
    props = function_properties("WebhookFunction", TEMPLATE)
    assert props["ReservedConcurrentExecutions"] == {"Ref": "WebhookReservedConcurrency"}


def test_every_function_that_frees_or_takes_a_slot_may_update_the_table():
    for name in set(FUNCTIONS) - {"AuthFunction", "CleanupFunction"}:  # these take and free none
        assert "dynamodb:UpdateItem" in _actions(name), name


def test_task_events_have_retries_and_a_dead_letter_queue():
    props = RESOURCES["TaskEventsFunction"]["Properties"]
    rule = props["Events"]["TaskStateChange"]["Properties"]
    assert rule["RetryPolicy"]["MaximumRetryAttempts"] > 0 and "DeadLetterConfig" in rule
    assert props["EventInvokeConfig"]["DestinationConfig"]["OnFailure"]["Type"] == "SQS"
    assert RESOURCES["DeadLetterAlarm"]["Properties"]["Dimensions"][0]["Value"] == {
        "GetAtt": "DeadLetterQueue.QueueName"
    }


def test_reconciler_runs_every_minute_one_at_a_time_and_is_watched():
    props = RESOURCES["ReconcileFunction"]["Properties"]
    assert props["Events"]["EveryMinute"]["Properties"]["Schedule"] == "rate(1 minute)"
    assert props["ReservedConcurrentExecutions"] == 1
    alarm = RESOURCES["ReconcilerFailingAlarm"]["Properties"]
    assert (alarm["MetricName"], alarm["Dimensions"][0]["Value"]) == ("Errors", {"Ref": "ReconcileFunction"})


def test_table_is_on_demand_and_the_webhook_url_is_an_output():
    assert RESOURCES["RecordsTable"]["Properties"]["BillingMode"] == "PAY_PER_REQUEST"
    assert "/webhook" in TEMPLATE["Outputs"]["WebhookUrl"]["Value"]["Sub"]


def test_every_checkov_skip_says_why():
    for name, resource in RESOURCES.items():
        for skip in (resource.get("Metadata") or {}).get("checkov", {}).get("skip", []):
            assert skip["id"].startswith(("CKV_", "CKV2_")) and len(skip.get("comment", "")) > 40, (name, skip)


def test_deadline_schedules_live_in_the_installs_own_group():
    group = RESOURCES["DeadlineScheduleGroup"]["Properties"]
    assert group["Name"] == {"Ref": "AWS::StackName"}
    trust = RESOURCES["DeadlineSchedulerRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]
    assert trust["Principal"] == {"Service": "scheduler.amazonaws.com"}
    assert trust["Condition"]["StringEquals"]["aws:SourceAccount"] == {"Ref": "AWS::AccountId"}
    # Only this install's schedule group may have Scheduler assume it, not any schedule in the account.
    assert trust["Condition"]["StringEquals"]["aws:SourceArn"] == {
        "Sub": "arn:${AWS::Partition}:scheduler:${AWS::Region}:${AWS::AccountId}:"
        "schedule-group/${DeadlineScheduleGroup}"
    }


def test_registering_is_bound_to_the_installs_tag_and_tags_are_read_only_where_they_can_be():
    launch = {s["Sid"]: s for s in _policy_statements(LAUNCH_POLICY)}
    register = launch["RegisterOnlyTaggedAsOurs"]
    assert register["Action"] == "ecs:RegisterTaskDefinition"
    assert register["Condition"] == {"StringEquals": {"aws:RequestTag/review-apps:install": {"Ref": "AWS::StackName"}}}
    # ...and to this install's own families, as AWS's authorization reference allows for this action.
    assert register["Resource"]["Sub"].endswith(":task-definition/review-app_${AWS::StackName}_*:*")
    assert launch["ReadWhoOwnsSecrets"]["Action"] == "secretsmanager:DescribeSecret"
    assert ":secret:*" in launch["ReadWhoOwnsSecrets"]["Resource"]["Sub"]

    assert "ecs:RegisterTaskDefinition" not in str(launch["TaskDefinitions"]["Action"])
    assert launch["ReadWhoOwnsRepositories"]["Action"] == "ecr:ListTagsForResource"
    assert ":repository/*" in launch["ReadWhoOwnsRepositories"]["Resource"]["Sub"]
    assert launch["ReadWhoOwnsTheListedTaskRoles"]["Resource"] == {"Ref": "ReviewAppTaskRoleArns"}
    assert launch["ReadWhoOwnsTheListedExecutionRoles"]["Resource"] == {"Ref": "ReviewAppExecutionRoleArns"}


def test_every_alarm_notifies_the_operators_topic_when_there_is_one():
    alarms = [r for r in RESOURCES.values() if r["Type"] == "AWS::CloudWatch::Alarm"]
    assert len(alarms) >= 2
    for alarm in alarms:
        assert alarm["Properties"]["AlarmActions"] == {
            "If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]
        }


def test_an_empty_role_list_makes_no_pass_role_statement():
    """IAM refuses an empty resource: each list's statements exist only when it has roles."""
    statements = RESOURCES[LAUNCH_POLICY]["Properties"]["PolicyDocument"]["Statement"]
    conditional = {st["If"][1]["Sid"]: st["If"][0] for st in statements if "If" in st}
    assert conditional == {
        "PassOnlyListedTaskRoles": "HasTaskRoles",
        "PassOnlyListedExecutionRoles": "HasExecutionRoles",
        "ReadWhoOwnsTheListedTaskRoles": "HasTaskRoles",
        "ReadWhoOwnsTheListedExecutionRoles": "HasExecutionRoles",
    }
    conditions = TEMPLATE["Conditions"]
    assert conditions["HasTaskRoles"] == {"Not": [{"Equals": [{"Join": ["", {"Ref": "ReviewAppTaskRoleArns"}]}, ""]}]}
    assert TEMPLATE["Parameters"]["ReviewAppTaskRoleArns"]["Default"] == ""
    assert not any("iam:PassRole" in str(st) for st in statements if "If" not in st and "Deadline" not in st["Sid"])
    parameters = TEMPLATE["Parameters"]
    assert "AllowedImageRegistries" not in parameters  # replaced by ownership by tag
    assert {"GitLabRegistryHost", "SharedImagePrefixes"} <= set(parameters)


def test_address_mode_is_optional_and_its_policy_touches_only_what_the_install_made():
    assert RESOURCES[ROUTE_POLICY]["Condition"] == "UseAddresses"
    for name in set(FUNCTIONS) - {"AuthFunction"}:  # every function but sign-in routes
        policies = RESOURCES[name]["Properties"]["Policies"]
        assert ADDRESS_MODE_ONLY in policies or (
            {"Ref": ROUTE_POLICY} in policies and RESOURCES[name]["Condition"] == "UseAddresses"
        ), name
    route = {s["Sid"]: s for s in _route_statements()}
    install = {"Ref": "AWS::StackName"}
    assert route["ReadRoutes"]["Resource"] == "*" and all(
        a.split(":")[1].startswith("Describe") for a in route["ReadRoutes"]["Action"]
    )
    for sid in ("CreateOwnTargetGroups", "CreateRulesOnTheListener"):
        assert route[sid]["Condition"]["StringEquals"] == {"aws:RequestTag/review-apps:install": install}, sid
    assert route["TagOnCreate"]["Condition"]["StringEquals"]["elasticloadbalancing:CreateAction"] == [
        "CreateTargetGroup",
        "CreateRule",
    ]
    for sid in ("ChangeOwnTargetGroups", "ChangeOwnRules"):
        assert route[sid]["Condition"]["StringEquals"] == {"aws:ResourceTag/review-apps:install": install}, sid
    assert "targetgroup/ra-*/*" in route["CreateOwnTargetGroups"]["Resource"]["Sub"]
    assert "targetgroup/ra-*/*" in route["ChangeOwnTargetGroups"]["Resource"]["Sub"]
    assert "DeleteTargetGroup" in str(route["ChangeOwnTargetGroups"]["Action"])
    assert "*" not in str(route["ChangeOwnRules"]["Resource"]).replace('"/*"', "").replace("'/*'", "")
    variables = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]
    assert variables["ALB_LISTENER_ARN"] == {
        "If": ["CreateAlb", {"Ref": "AlbHttpsListener"}, {"Ref": "AlbListenerArn"}]
    }
    for created in (
        "ReviewAppsAlb",
        "AlbHttpsListener",
        "AlbHttpRedirectListener",
        "ReviewWildcardRecord",
        "AlbSecurityGroup",
    ):
        assert RESOURCES[created]["Condition"] == "CreateAlb", created
    https = RESOURCES["AlbHttpsListener"]["Properties"]
    assert https["Protocol"] == "HTTPS" and https["SslPolicy"].startswith("ELBSecurityPolicy-TLS13")
    assert RESOURCES["ReviewWildcardRecord"]["Properties"]["Name"] == {"Sub": "*.${ReviewDomain}."}


def test_address_mode_refuses_at_deploy_time_what_it_cannot_hold():
    rules = TEMPLATE["Rules"]
    [cap] = rules["AddressModeNeedsACapTheAlbCanHold"]["Assertions"]
    allowed, ref = cap["Assert"]["Contains"]
    # One of the ALB's 100 target groups is the wake function's.
    assert allowed == [str(n) for n in range(1, 100)] and ref == {"Ref": "MaxRunningApps"}
    needs = rules["AddressModeNeedsDomainAndVpc"]["Assertions"]
    assert [a["Assert"]["Not"][0]["Equals"][0] for a in needs] == [{"Ref": "ReviewDomain"}, {"Ref": "VpcId"}]


def test_the_wake_function_is_the_albs_lambda_target_in_address_mode():
    wake = RESOURCES["WakeFunction"]
    assert wake["Condition"] == "UseAddresses" and wake["Properties"]["Handler"] == "wake.app.handler"
    # Its own target group is made after it, so it must not get the global's reference to it.
    assert wake["Properties"]["Environment"]["Variables"]["WAKE_TARGET_GROUP_ARN"] == ""
    group = RESOURCES["WakeTargetGroup"]
    assert group["Properties"]["TargetType"] == "lambda" and group["DependsOn"] == "WakeInvokePermission"
    assert group["Properties"]["Targets"] == [{"Id": {"GetAtt": "WakeFunction.Arn"}}]
    permission = RESOURCES["WakeInvokePermission"]["Properties"]
    assert permission["Principal"] == "elasticloadbalancing.amazonaws.com"
    assert permission["SourceAccount"] == {"Ref": "AWS::AccountId"}
    variables = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]
    assert variables["WAKE_TARGET_GROUP_ARN"] == {"If": ["UseAddresses", {"Ref": "WakeTargetGroup"}, ""]}
    assert variables["DEFAULT_SLEEP_AFTER"] == {"Ref": "DefaultSleepAfter"}
    assert "cloudwatch:GetMetricData" in _actions("ReconcileFunction")
    assert "cloudwatch:GetMetricData" not in _actions("WebhookFunction")


def test_the_wake_sample_is_what_an_alb_sends():
    sample = json.loads((ROOT / "events" / "wake_sleeping_host.json").read_text())
    assert sample["requestContext"]["elb"]["targetGroupArn"].split(":")[5].startswith("targetgroup/")
    assert sample["httpMethod"] == "GET" and sample["headers"]["host"].endswith(".review.example.com")
    assert all(name == name.lower() for name in sample["headers"])  # the ALB lower-cases header names


def test_sign_in_is_its_own_provider_on_its_own_api_and_on_by_default():
    parameters = TEMPLATE["Parameters"]
    assert parameters["ReviewAppAccess"]["Default"] == "members"
    assert parameters["ReviewAppAccess"]["AllowedValues"] == ["members", "public"]
    assert parameters["ReviewAppSessionSeconds"]["MaxValue"] == 43200
    assert parameters["ReviewAppMinAccessLevel"]["Default"] == 20
    auth = RESOURCES["AuthFunction"]
    assert auth["Condition"] == "SignInOn" and auth["Properties"]["Handler"] == "auth.app.handler"
    [event] = auth["Properties"]["Events"].values()
    assert event["Properties"] == {"ApiId": {"Ref": "SignInApi"}, "Path": "/auth/{step+}", "Method": "ANY"}
    # The API that invokes it can't be named in its own environment: it reads its issuer from each request.
    assert auth["Properties"]["Environment"]["Variables"]["OIDC_ISSUER"] == ""
    variables = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]
    assert "${SignInApi}.execute-api" in str(variables["OIDC_ISSUER"])
    assert variables["OIDC_CLIENT_SECRET_ARN"] == {"If": ["SignInOn", {"Ref": "AlbClientSecret"}, ""]}
    secret = RESOURCES["AlbClientSecret"]["Properties"]["GenerateSecretString"]
    assert secret["GenerateStringKey"] == "client_secret" and secret["PasswordLength"] >= 32
    assert "/auth/callback" in str(TEMPLATE["Outputs"]["SignInCallbackUrl"]["Value"])


def test_sign_in_reads_only_its_secrets_and_touches_only_items():
    actions = _actions("AuthFunction")
    assert actions == {
        "ssm:GetParameter",
        "secretsmanager:GetSecretValue",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:DeleteItem",
        "dynamodb:UpdateItem",
        "kms:Sign",
        "kms:GetPublicKey",
    }
    [inline] = [p for p in RESOURCES["AuthFunction"]["Properties"]["Policies"] if "Statement" in p]
    statements = {s["Sid"]: s for s in inline["Statement"]}
    # The records: one item by its key, never a scan or a write; everything else in its own table.
    assert statements["ReadAnMrsRecord"]["Action"] == "dynamodb:GetItem"
    assert statements["ReadAnMrsRecord"]["Resource"] == {"GetAtt": "RecordsTable.Arn"}
    assert statements["SignIns"]["Resource"] == {"GetAtt": "SignInTable.Arn"}
    assert statements["SignIdTokens"]["Resource"] == {"GetAtt": "SignInKey.Arn"}
    key = RESOURCES["SignInKey"]["Properties"]
    assert (key["KeySpec"], key["KeyUsage"]) == ("RSA_2048", "SIGN_VERIFY")
    # No other function of the install may sign with it.
    others = [n for n, r in RESOURCES.items() if r["Type"] == "AWS::Serverless::Function" and n != "AuthFunction"]
    assert all("kms:Sign" not in _actions(name) for name in others)
    assert statements["ReadTheLoadBalancersClientSecret"]["Resource"] == {"Ref": "AlbClientSecret"}
    route = str(RESOURCES[ROUTE_POLICY]["Properties"]["PolicyDocument"]["Statement"])
    assert "secretsmanager:GetSecretValue" in route and "AlbClientSecret" in route  # rule writers need it too


def test_auth_samples_hit_the_templates_route():
    [event] = RESOURCES["AuthFunction"]["Properties"]["Events"].values()
    for sample in (ROOT / "events").glob("auth_*.json"):
        request = json.loads(sample.read_text())
        assert request["routeKey"] == f"{event['Properties']['Method']} {event['Properties']['Path']}", sample.name
        assert request["rawPath"].startswith("/auth/"), sample.name


def test_sam_delete_cleans_up_after_every_function_is_gone_and_before_what_it_needs():
    cleanup = RESOURCES["Cleanup"]
    assert cleanup["Type"] == "Custom::ReviewAppsCleanup"
    assert cleanup["Properties"]["ServiceToken"] == {"GetAtt": "CleanupFunction.Arn"}
    assert cleanup["DependsOn"] == "DeadlineScheduleGroup"  # deleted after the clean-up has emptied it
    for name in set(FUNCTIONS) - {"CleanupFunction"}:  # nothing launches while it cleans up
        assert RESOURCES[name]["DependsOn"] == "Cleanup", name
    function = RESOURCES["CleanupFunction"]["Properties"]
    assert function["Handler"] == "cleanup.app.handler" and function["Timeout"] <= 900
    # These two would make a dependency cycle (they depend on functions that depend on Cleanup).
    assert function["Environment"]["Variables"] == {"WAKE_TARGET_GROUP_ARN": "", "OIDC_ISSUER": ""}
    assert "scheduler:ListSchedules" in _actions("CleanupFunction") and "ecs:StopTask" in _actions("CleanupFunction")


def test_functions_can_run_in_a_vpc_to_reach_a_private_gitlab():
    parameters = TEMPLATE["Parameters"]
    assert parameters["FunctionSubnetIds"]["Default"] == "" and parameters["FunctionSecurityGroupIds"]["Default"] == ""
    vpc = TEMPLATE["Globals"]["Function"]["VpcConfig"]["If"]
    assert vpc[0] == "HasFunctionVpc" and vpc[2] == {"Ref": "AWS::NoValue"}
    assert vpc[1] == {
        "SubnetIds": {"Ref": "FunctionSubnetIds"},
        "SecurityGroupIds": {"Ref": "FunctionSecurityGroupIds"},
    }
    access = {
        "If": [
            "HasFunctionVpc",
            {"Sub": "arn:${AWS::Partition}:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"},
            {"Ref": "AWS::NoValue"},
        ]
    }
    for name in FUNCTIONS:  # the network interfaces a function in a VPC needs, only then
        assert access in RESOURCES[name]["Properties"]["Policies"], name


def test_task_events_read_only_the_installs_own_log_groups():
    statements = {s["Sid"]: s for s in _statements("TaskEventsFunction") if "Sid" in s}
    logs = statements["ReadACrashedAppsLog"]
    assert logs["Action"] == "logs:GetLogEvents"
    assert logs["Resource"] == {
        "Sub": "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:${LogGroupPrefix}*:log-stream:*"
    }


def test_one_catch_all_rule_sends_every_review_host_without_a_rule_to_the_wake_function():
    rule = RESOURCES["CatchAllRule"]
    assert rule["Type"] == "AWS::ElasticLoadBalancingV2::ListenerRule" and rule["Condition"] == "UseAddresses"
    props = rule["Properties"]
    assert props["Priority"] == 50000  # the last there is: every other rule is matched first
    assert props["Conditions"] == [
        {"Field": "host-header", "HostHeaderConfig": {"Values": [{"Sub": "*.${ReviewDomain}"}]}}
    ]
    assert props["ListenerArn"] == {"If": ["CreateAlb", {"Ref": "AlbHttpsListener"}, {"Ref": "AlbListenerArn"}]}
    signed_in, public = props["Actions"]["If"][1:]
    assert props["Actions"]["If"][0] == "SignInOn"
    assert [a["Type"] for a in signed_in] == ["authenticate-oidc", "forward"]
    assert public == [{"Type": "forward", "TargetGroupArn": {"Ref": "WakeTargetGroup"}}]
    oidc = signed_in[0]["AuthenticateOidcConfig"]
    # The same sign-in as the rules the functions write (adapters.elb), so a wake signs in alike.
    assert oidc["ClientSecret"] == {"Sub": "{{resolve:secretsmanager:${AlbClientSecret}:SecretString:client_secret}}"}
    assert oidc["SessionCookieName"] == "ReviewAppsSession" and oidc["Scope"] == "openid"
    assert oidc["OnUnauthenticatedRequest"] == "authenticate"
    assert signed_in[1]["TargetGroupArn"] == {"Ref": "WakeTargetGroup"}


# ----------------------------------------------------------------- settings the functions refuse


def _rule_holds(expression, parameters: dict[str, str]) -> bool | str | list:
    """Evaluate a CloudFormation rule expression (Or, Not, Equals, Contains, Ref) over parameters."""
    if isinstance(expression, dict):
        [(name, args)] = expression.items()
        if name == "Ref":
            return parameters[args]
        values = [_rule_holds(a, parameters) for a in args] if isinstance(args, list) else _rule_holds(args, parameters)
        if name == "Or":
            return any(values)
        if name == "Not":
            return not values[0]
        if name == "Equals":
            return values[0] == values[1]
        if name == "Contains":
            return values[1] in values[0]
        raise AssertionError(f"unknown rule function {name}")
    if isinstance(expression, list):
        return [_rule_holds(e, parameters) for e in expression]
    return expression


def _template_accepts(parameter: str, value: str) -> bool:
    return re.fullmatch(TEMPLATE["Parameters"][parameter]["AllowedPattern"], value) is not None


def _functions_accept(**env: str) -> bool:
    from review_apps.settings import SettingsError, load_settings
    from tests.unit.test_messages_and_models import ENV

    try:
        load_settings({**ENV, **env})
    except SettingsError:
        return False
    return True


@pytest.mark.parametrize(
    ("value", "allowed"),
    [("30m", True), ("1h30m", True), ("4h", True), ("90s", True), ("1d", True), ("2h0m", True)]
    + [("0m", False), ("0", False), ("1.5h", False), ("h", False), ("30", False), ("", False)],
)
def test_a_ttl_the_template_allows_is_one_the_functions_accept(value, allowed):
    """What the template allows starts; it is stricter than the functions only about a bare number
    of seconds and an empty value (which they would read as "the default")."""
    assert _template_accepts("DefaultTtl", value) == _template_accepts("MaxTtl", value) == allowed
    if allowed:
        assert _functions_accept(DEFAULT_TTL=value, MAX_TTL="1000d") and _functions_accept(
            MAX_TTL=value, DEFAULT_TTL="1s"
        )
    elif value not in ("30", ""):
        assert not _functions_accept(DEFAULT_TTL=value) and not _functions_accept(MAX_TTL=value, DEFAULT_TTL="1s")


@pytest.mark.parametrize("value", ["0", "5m", "15m", "1h", "2h30m", "1d", "4m", "1m", "30s", "0m", "90", "05m"])
def test_a_sleep_after_the_template_allows_is_one_the_functions_accept(value):
    """Stricter only where a regex would have to add up parts (300s, 4m60s): those it refuses."""
    assert _template_accepts("DefaultSleepAfter", value) == _functions_accept(DEFAULT_SLEEP_AFTER=value)


def test_the_ttl_rule_refuses_exactly_the_pairs_the_functions_refuse():
    """Every pair of the whole-minute and whole-hour values the rule lists: the deploy fails where
    the functions would fail at cold start, and passes where they would start."""
    rule = TEMPLATE["Rules"]["DefaultTtlWithinMaxTtl"]["Assertions"]
    values = sorted({v for a in rule for v in a["Assert"]["Or"][1]["Not"][0]["Contains"][0]} | {"24h", "1d"})
    assert len(values) == 36
    refused = 0
    for default in values:
        for maximum in values:
            deploys = all(_rule_holds(a["Assert"], {"DefaultTtl": default, "MaxTtl": maximum}) for a in rule)
            assert deploys == _functions_accept(DEFAULT_TTL=default, MAX_TTL=maximum), (default, maximum)
            refused += not deploys
    assert refused == 36 * 35 // 2 - 1  # every shorter MaxTtl; 24h and 1d are the same length


@pytest.mark.parametrize("value", ["", '{"spot_factor": 0.35}', "not json", "[1]"])
def test_a_price_table_that_is_not_an_object_fails_the_deploy(value):
    assert _template_accepts("Prices", value) == (value == "" or value.startswith("{"))

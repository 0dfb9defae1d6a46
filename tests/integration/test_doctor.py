"""`make doctor` against moto and the GitLab stand-in: a healthy install passes every check, and
each check, broken in turn, fails with a fix to run. The stack is a CloudFormation stack in moto
holding the install's parameters and outputs; its webhook URL is served by the real
WebhookFunction through the local edge."""

from __future__ import annotations

import boto3
import pytest

from local.edge import WEBHOOK_HOST
from local.world import (
    GITLAB_TOKEN,
    INSTALL_ID,
    REGION,
    REVIEW_DOMAIN,
    TASK_ROLE,
    World,
)
from tools import doctor

STACK = INSTALL_ID


def deploy_stack(world: World, function_env: dict[str, str] | None = None, **changes: str) -> None:
    world.deploy_stack(STACK, function_env, **changes)


def examine(world: World) -> tuple[list[doctor.Check], str]:
    checks = doctor.run(
        STACK, doctor.Clients(lambda service: boto3.client(service, region_name=REGION)), world.edge().session()
    )
    return checks, doctor.report(STACK, checks)


def test_a_healthy_install_passes_every_check(alb_world):
    deploy_stack(alb_world)
    checks, shown = examine(alb_world)
    assert all(c.ok for c in checks), shown
    assert len(checks) == 15, shown
    assert shown.endswith("15 checks, 0 failed")
    assert "the stack's 6 functions load their settings" in shown
    assert "the listener has room for 99 awake review apps beside others' 0 rules and 0 target groups" in shown
    assert f"the listener's certificate covers *.{REVIEW_DOMAIN}" in shown
    assert f"webhook https://{WEBHOOK_HOST}/webhook answers an unsigned request with 401" in shown


def broken_ssm(world):
    world.ssm.delete_parameter(Name="/review-apps/gitlab-token")


def broken_oauth(world):
    world.ssm.put_parameter(Name="/review-apps/gitlab-oauth", Value="not json", Type="SecureString", Overwrite=True)


def broken_role_tag(world):
    world.tag_role(TASK_ROLE, None)


def other_teams_rules(world):
    vpc = world.elbv2.describe_load_balancers()["LoadBalancers"][0]["VpcId"]
    for n in range(5):
        group = world.elbv2.create_target_group(Name=f"team-{n}", Protocol="HTTP", Port=80, VpcId=vpc)
        world.elbv2.create_rule(
            ListenerArn=world.listener_arn,
            Priority=n + 1,
            Conditions=[{"Field": "host-header", "HostHeaderConfig": {"Values": [f"team-{n}.example.org"]}}],
            Actions=[{"Type": "forward", "TargetGroupArn": group["TargetGroups"][0]["TargetGroupArn"]}],
        )


def broken_scopes(world):
    world.gitlab.state.token_scopes = ("read_api",)


def read_token_without_read_api(world):
    """Sign-in's read-only token lacks read_api (the stand-in knows one token: both parameters
    hold it, so the bot's check fails too, first)."""
    world.ssm.put_parameter(Name="/review-apps/gitlab-read-token", Value=GITLAB_TOKEN, Type="SecureString")
    world.gitlab.state.token_scopes = ("read_repository",)


@pytest.mark.parametrize(
    ("breakage", "changes", "says", "fix"),
    [
        (
            None,
            {"ClusterName": "no-such-cluster"},
            "ECS cluster no-such-cluster does not exist",
            "aws ecs create-cluster --cluster-name no-such-cluster",
        ),
        (None, {"Subnets": "subnet-0123456789abcdef0"}, "subnet-0123456789abcdef0'] missing", "Subnets"),
        (None, {"SecurityGroups": "sg-0123456789abcdef0"}, "sg-0123456789abcdef0'] missing", "SecurityGroups"),
        (
            broken_ssm,
            {},
            "SSM parameter /review-apps/gitlab-token: ParameterNotFound",
            "aws ssm put-parameter --name /review-apps/gitlab-token --type SecureString",
        ),
        (
            broken_oauth,
            {},
            "SSM parameter /review-apps/gitlab-oauth is not JSON with application_id and secret",
            "application_id",
        ),
        (
            broken_role_tag,
            {},
            "has no review-apps:projects tag: no project may use it",
            "aws iam tag-role --role-name shop-review-task --tags Key=review-apps:projects",
        ),
        (
            None,
            {"ReviewAppExecutionRoleArns": "arn:aws:iam::111122223333:role/gone"},
            "role arn:aws:iam::111122223333:role/gone: NoSuchEntity",
            "take it out of ReviewAppExecutionRoleArns",
        ),
        (
            None,
            {"ReviewDomain": "apps.example.org"},
            "does not cover *.apps.example.org",
            "aws acm request-certificate --domain-name '*.apps.example.org'",
        ),
        (broken_scopes, {}, "the bot's token has scopes read_api; it needs api", "scope api"),
        (
            read_token_without_read_api,
            {"GitLabReadTokenParameterName": "/review-apps/gitlab-read-token"},
            "the read-only token has scopes read_repository; it needs read_api",
            "a token with scope read_api, in /review-apps/gitlab-read-token",
        ),
        (
            other_teams_rules,
            {"MaxRunningApps": "95"},
            "the listener has room for 94 awake review apps beside others' 5 rules and 5 target groups; "
            "MaxRunningApps is 95",
            "MaxRunningApps=94",
        ),
        (None, {"GitLabUrl": "http://127.0.0.1:9"}, "GitLab at http://127.0.0.1:9 did not answer", "check GitLabUrl"),
    ],
)
def test_each_broken_check_fails_with_its_fix(alb_world, breakage, changes, says, fix):
    if breakage:
        breakage(alb_world)
    deploy_stack(alb_world, **changes)
    checks, shown = examine(alb_world)
    failed = [c for c in checks if not c.ok]
    # Without the bot's token GitLab can't be asked either: that check fails too, saying why.
    assert len(failed) == (2 if breakage in (broken_ssm, read_token_without_read_api) else 1), shown
    last = failed[-1] if breakage is read_token_without_read_api else failed[0]
    assert says in last.what and fix in last.fix, shown


def test_a_webhook_url_that_is_not_the_install_fails(alb_world):
    deploy_stack(alb_world)
    cloudformation = boto3.client("cloudformation", region_name=REGION)
    cloudformation.delete_stack(StackName=STACK)
    checks = doctor.run(
        STACK, doctor.Clients(lambda s: boto3.client(s, region_name=REGION)), alb_world.edge().session()
    )
    assert [c.ok for c in checks] == [False] and "sam deploy --guided" in checks[0].fix


def test_without_credentials_it_says_what_it_needs(monkeypatch, capsys):
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_DEFAULT_REGION",
        "AWS_REGION",
        "AWS_ENDPOINT_URL",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    assert doctor.main(["--stack", "x"]) == 2
    assert "needs AWS credentials and a Region" in capsys.readouterr().err


def test_settings_the_functions_refuse_are_reported_with_the_parameter_to_change(alb_world):
    """What the template's rules can't express (5h30m against 4h) deploys, and every function would
    fail at cold start: doctor loads each function's configuration with the functions' own code."""
    deploy_stack(alb_world, function_env={"DEFAULT_TTL": "5h30m", "MAX_TTL": "4h"})
    checks, shown = examine(alb_world)
    [failed] = [c for c in checks if not c.ok]
    assert failed.what.startswith("6 of 6 functions refuse their settings and would fail every call; ")
    assert "DEFAULT_TTL (19800s) is longer than MAX_TTL (14400s)" in failed.what, shown
    assert failed.fix == "sam deploy --parameter-overrides DefaultTtl=… MaxTtl=…", shown

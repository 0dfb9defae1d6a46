"""A whole install on one machine: moto (AWS) and the GitLab stand-in on 127.0.0.1, the
resources `sam deploy` plus a platform team would have created, and the real handlers.

Used by the integration tests and by `make demo`, so the demo shows exactly what is tested.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import requests
from boto3.dynamodb.types import TypeDeserializer
from moto.server import ThreadedMotoServer

from local import events
from local.gitlab_standin import GitLabStandIn
from local.lambda_runtime import LambdaContext, load_handler

REGION = "us-east-1"
GITLAB_TOKEN = "glpat-local-bot-token-0123456789"
WEBHOOK_SECRET = "local-webhook-secret-9f8e7d6c"
SIGNING_SECRET = "whsec_bG9jYWwtc2lnbmluZy1rZXktZm9yLXJldmlldy1hcHBz"  # base64 of a local-only key
CLUSTER = "review-apps"
TABLE = "review-apps-records"
SIGNIN_TABLE = "review-apps-signins"  # sign-in state: never beside the MR records
INSTALL_ID = "review-apps-local"
SCHEDULE_GROUP = INSTALL_ID
# The emulated account (MOTO_ACCOUNT_ID): the one the team's images, roles and ECR repositories are in.
ACCOUNT = "111122223333"
SCHEDULER_ROLE = f"arn:aws:iam::{ACCOUNT}:role/review-apps-local-deadlines"
# The roles the platform team lets review apps use (the install's two role lists).
TASK_ROLE = "arn:aws:iam::111122223333:role/shop-review-task"
EXECUTION_ROLE = "arn:aws:iam::111122223333:role/shop-review-execution"
BASE_FAMILY = "shop-web"
# ECR repositories of the team (this account, tagged for its projects) and the images every
# project may use (SharedImagePrefixes).
TEAM_REPOSITORIES = ("shop", "shop-backend")
SHARED_IMAGES = "docker.io/library/nginx"
PROJECT_ID = 14
PROJECT_PATH = "awesome_space/awesome_project"

SPEC = """\
task_definition: shop-web
image: 111122223333.dkr.ecr.us-east-1.amazonaws.com/shop:${CI_COMMIT_SHA}
ttl: 30m
trigger: pipeline
"""


def _one_request_at_a_time(handler: Any, why: str) -> None:
    """Serve one request of `handler`'s service at a time (see the callers for why)."""
    if handler.__dict__.get("serialized_because"):
        return
    lock = threading.Lock()
    unlocked = handler.call_action

    def call_action(self):  # type: ignore[no-untyped-def]
        with lock:
            return unlocked(self)

    handler.call_action = call_action
    handler.serialized_because = why


def _serialize_dynamodb_requests() -> None:
    """DynamoDB applies each write and each transaction atomically. moto checks a condition and
    writes in two steps, and undoes a cancelled transaction by restoring a copy of the whole
    table, which under concurrent requests can wipe out another request's write. Handling one
    DynamoDB request at a time gives back the guarantee our conditional writes rely on."""
    from moto.dynamodb.responses import DynamoHandler

    _one_request_at_a_time(DynamoHandler, "conditional writes are atomic in DynamoDB")
    _transactions_back_up_only_their_items()


def _transactions_back_up_only_their_items() -> None:
    """moto backs up each table a transaction names by deep-copying all of it, so that it can
    roll back: at a thousand records that is a second or more per transaction, which DynamoDB
    never takes (and a request-path timeout in our functions). Back up only the items the
    transaction names, and put those back when it is cancelled."""
    import copy

    from moto.dynamodb import models
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.table import Table

    backend = models.DynamoDBBackend
    if getattr(backend.transact_write_items, "backs_up_items", False):
        return
    whole_table_copy = backend.transact_write_items

    class _NoTableCopies:  # what the original calls as `copy`: tables are not copied (see below)
        @staticmethod
        def deepcopy(value: Any) -> Any:
            return value if isinstance(value, Table) else copy.deepcopy(value)

    models.copy = _NoTableCopies  # type: ignore[assignment]

    def backs_up_items(self, transact_items):  # type: ignore[no-untyped-def]
        saved = []
        for entry in transact_items:
            _, op = next(iter(entry.items()))
            table = self.tables.get(op.get("TableName"))
            key = op.get("Key") or op.get("Item") or {}
            if table is None or table.range_key_attr or table.hash_key_attr not in key:
                continue
            hash_value = DynamoType(key[table.hash_key_attr])
            saved.append((table, hash_value, copy.deepcopy(table.items.get(hash_value))))
        try:
            return whole_table_copy(self, transact_items)
        except Exception:
            for table, hash_value, item in reversed(saved):
                if item is None:
                    table.items.pop(hash_value, None)
                else:
                    table.items[hash_value] = item
            raise

    backs_up_items.backs_up_items = True  # type: ignore[attr-defined]
    backend.transact_write_items = backs_up_items  # type: ignore[method-assign]


# The load balancer quotas AWS enforces and moto doesn't (per ALB, not counting default rules).
# Tests lower them to fill a listener quickly.
ALB_QUOTAS = {"rules": 100, "target_groups": 100}
# Targets whose health check fails, as the ALB would report them: (target group, ip) -> (reason, description).
ALB_TARGET_HEALTH: dict[tuple[str, str], tuple[str, str]] = {}
# Registered targets not yet checked, as a real ALB reports them for its first checks: "initial".
# moto reports every target healthy at once; tests that watch an app start hold them here.
ALB_UNCHECKED: set[tuple[str, str]] = set()
ALB_HOLD_NEW_TARGETS = {"on": False}


def _behave_like_an_alb() -> None:
    """Two things real ELB does that moto does not: a listener rule's priority is claimed
    atomically (moto checks, then inserts, so two concurrent CreateRule calls could both win),
    and an ALB refuses rules past its quotas (TooManyRules, TooManyTargetGroups)."""
    from moto.elbv2.exceptions import ELBClientError
    from moto.elbv2.models import ELBv2Backend
    from moto.elbv2.responses import ELBV2Response

    _one_request_at_a_time(ELBV2Response, "a rule priority is claimed atomically in ELB")
    if getattr(ELBv2Backend.create_rule, "with_quotas", False):
        return
    create_rule = ELBv2Backend.create_rule

    def with_quotas(self, listener_arn, conditions, priority, actions, tags=None):  # type: ignore[no-untyped-def]
        listeners = self.describe_listeners(None, [listener_arn])
        balancer = self.load_balancers[listeners[0].load_balancer_arn]
        rules = [rule for listener in balancer.listeners.values() for rule in listener._non_default_rules.values()]
        if len(rules) >= ALB_QUOTAS["rules"]:
            raise ELBClientError("TooManyRules", "You've reached the limit on the number of rules per load balancer")
        in_use = {
            action.data.get("TargetGroupArn")
            for listener in balancer.listeners.values()
            for rule in list(listener._non_default_rules.values()) + list(listener._default_rule.values())
            for action in rule.actions
        } - {None}
        wanted = {a.get("TargetGroupArn") for a in actions} - {None}
        if len(in_use | wanted) > ALB_QUOTAS["target_groups"]:
            raise ELBClientError(
                "TooManyTargetGroups", "You've reached the limit on the number of target groups per load balancer"
            )
        return create_rule(self, listener_arn, conditions, priority, actions, tags)

    with_quotas.with_quotas = True  # type: ignore[attr-defined]
    ELBv2Backend.create_rule = with_quotas  # type: ignore[method-assign]

    # The ALB's health checker: moto calls every registered target healthy; tests say otherwise.
    from moto.elbv2.models import FakeHealthStatus, FakeTargetGroup

    checked = FakeTargetGroup.health_for

    def health_for(self, target, ec2_backend):  # type: ignore[no-untyped-def]
        failing = ALB_TARGET_HEALTH.get((self.arn, target["Id"]))
        if failing and target["Id"] in self.targets:
            return FakeHealthStatus(
                target["Id"], self.targets[target["Id"]]["Port"], self.health_check_port, "unhealthy", *failing
            )
        if (self.arn, target["Id"]) in ALB_UNCHECKED and target["Id"] in self.targets:
            return FakeHealthStatus(
                target["Id"],
                self.targets[target["Id"]]["Port"],
                self.health_check_port,
                "initial",
                "Elb.RegistrationInProgress",
                "Target registration is in progress",
            )
        return checked(self, target, ec2_backend)

    register = FakeTargetGroup.register

    def register_held(self, targets):  # type: ignore[no-untyped-def]
        if ALB_HOLD_NEW_TARGETS["on"]:
            ALB_UNCHECKED.update((self.arn, t["Id"]) for t in targets)
        return register(self, targets)

    FakeTargetGroup.register = register_held  # type: ignore[method-assign]

    FakeTargetGroup.health_for = health_for  # type: ignore[method-assign]


def _list_families_by_status() -> None:
    """ECS's ListTaskDefinitionFamilies with status=ACTIVE lists only families that still have
    an ACTIVE revision; moto ignores the status and lists every family it ever saw."""
    from moto.ecs.responses import EC2ContainerServiceResponse as Responses

    if getattr(Responses.list_task_definition_families, "by_status", False):
        return
    listed = Responses.list_task_definition_families

    def by_status(self):  # type: ignore[no-untyped-def]
        status = self._get_param("status")
        if status not in ("ACTIVE", "INACTIVE"):
            return listed(self)
        families = [
            family
            for family in self.ecs_backend.list_task_definition_families(self._get_param("familyPrefix"))
            if any(d.status == status for d in self.ecs_backend.task_definitions[family].values())
        ]
        from moto.core.responses import ActionResult

        return ActionResult({"families": families})

    by_status.by_status = True  # type: ignore[attr-defined]
    Responses.list_task_definition_families = by_status  # type: ignore[method-assign]


class MotoServer:
    """One moto server per process; `reset()` empties it between scenarios."""

    def __init__(self, bind: str = "127.0.0.1", port: int = 0) -> None:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
        _serialize_dynamodb_requests()
        _behave_like_an_alb()
        _list_families_by_status()
        self._server = ThreadedMotoServer(ip_address=bind, port=port, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.url = f"http://{'127.0.0.1' if host == '0.0.0.0' else host}:{port}"

    def reset(self) -> None:
        requests.post(f"{self.url}/moto-api/reset", timeout=5).raise_for_status()
        # Keep tasks where we put them: moto otherwise advances a task on every DescribeTasks.
        requests.post(
            f"{self.url}/moto-api/state-manager/set-transition",
            json={"model_name": "ecs::task", "transition": {"progression": "manual", "times": 1_000_000}},
            timeout=5,
        ).raise_for_status()

    def stop(self) -> None:
        self._server.stop()


REVIEW_DOMAIN = "review.example.test"
CATCH_ALL_PRIORITY = 50_000  # the template's CatchAllRule: the last priority a listener has
# Sign-in (address mode, members only): the install's provider, GitLab's OAuth application, and
# the people who try to open review apps (GitLab users; passwords for the stand-in's sign-in form).
SIGNIN_ISSUER = "https://signin.example.test/auth"
OAUTH_APP = {"application_id": "local-review-apps-signin", "secret": "gloas-local-oauth-secret-1234"}
ALB_CLIENT = {"client_id": "review-apps-local-alb", "client_secret": "local-alb-client-secret-5a6b7c8d9e0f"}
PEOPLE = {  # username: (user id, name, password, access level in the project or None)
    "dana": (61, "Dana Developer", "dana-password", 30),
    "rita": (62, "Rita Reporter", "rita-password", 20),
    "gus": (63, "Gus Guest", "gus-password", 10),
    "mallory": (66, "Mallory Outsider", "mallory-password", None),
}


class World:
    def __init__(
        self,
        moto: MotoServer,
        gitlab: GitLabStandIn,
        aws_endpoint: str | None = None,
        alb: bool = False,
        **settings: str,
    ) -> None:
        """`alb`: address mode, on an ALB with an HTTPS listener for *.REVIEW_DOMAIN."""
        self.moto = moto
        self.gitlab = gitlab
        self.alb = alb
        self.aws_endpoint = aws_endpoint or moto.url  # e.g. a FaultProxy in front of moto
        self.settings = settings
        self._versions: dict[str, int] = {}
        self.review_domain = REVIEW_DOMAIN
        self._edge: Any = None

    # ------------------------------------------------------------------ set-up

    def install(self) -> World:
        self.moto.reset()
        ALB_TARGET_HEALTH.clear()
        ALB_UNCHECKED.clear()
        ALB_HOLD_NEW_TARGETS["on"] = False
        self.gitlab.state.__init__(GITLAB_TOKEN)  # type: ignore[misc]
        os.environ.update(
            {
                "MOTO_ACCOUNT_ID": ACCOUNT,
                "AWS_ENDPOINT_URL": self.aws_endpoint,
                "AWS_DEFAULT_REGION": REGION,
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_SESSION_TOKEN": "testing",
            }
        )
        os.environ.pop("AWS_PROFILE", None)
        self.ec2 = boto3.client("ec2", region_name=REGION)
        self.ecs = boto3.client("ecs", region_name=REGION)
        self.ssm = boto3.client("ssm", region_name=REGION)
        self.dynamodb = boto3.client("dynamodb", region_name=REGION)
        self.scheduler = boto3.client("scheduler", region_name=REGION)
        self.scheduler.create_schedule_group(
            Name=SCHEDULE_GROUP, Tags=[{"Key": "review-apps:install", "Value": INSTALL_ID}]
        )

        vpc = self.ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
        self.ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
        subnet = self.ec2.create_subnet(VpcId=vpc, CidrBlock="10.20.1.0/24")["Subnet"]["SubnetId"]
        group = self.ec2.create_security_group(GroupName="review-apps", Description="review apps", VpcId=vpc)["GroupId"]
        self.ecs.create_cluster(clusterName=CLUSTER, capacityProviders=["FARGATE", "FARGATE_SPOT"])
        for name in (TABLE, SIGNIN_TABLE):
            self.dynamodb.create_table(
                TableName=name,
                BillingMode="PAY_PER_REQUEST",
                AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            )
        self.ssm.put_parameter(Name="/review-apps/gitlab-token", Value=GITLAB_TOKEN, Type="SecureString")
        self.ssm.put_parameter(Name="/review-apps/webhook-secret", Value=WEBHOOK_SECRET, Type="SecureString")
        self.ssm.put_parameter(Name="/review-apps/signing-secret", Value=SIGNING_SECRET, Type="SecureString")
        self.register_base_task_definition()
        self._roles_and_repositories()
        address_mode = self._load_balancer(vpc, subnet) if self.alb else {}
        for name in (
            "ALB_LISTENER_ARN",
            "REVIEW_DOMAIN",
            "VPC_ID",
            "WAKE_TARGET_GROUP_ARN",
            "OIDC_ISSUER",
            "OIDC_CLIENT_SECRET_ARN",
            "OIDC_SIGNING_KEY_ARN",
            "REVIEW_APP_ACCESS",
        ):
            os.environ.pop(name, None)  # an earlier install's address mode must not leak into this one
        os.environ.update(
            {
                "GITLAB_URL": self.gitlab.url,
                "GITLAB_TOKEN_PARAMETER": "/review-apps/gitlab-token",
                "WEBHOOK_SECRET_PARAMETER": "/review-apps/webhook-secret",
                "TABLE_NAME": TABLE,
                "SIGNIN_TABLE_NAME": SIGNIN_TABLE,
                "CLUSTER": CLUSTER,
                "SUBNETS": subnet,
                "SECURITY_GROUPS": group,
                "ASSIGN_PUBLIC_IP": "DISABLED",
                "DEFAULT_TTL": "30m",
                "MAX_TTL": "4h",
                "INSTALL_ID": INSTALL_ID,
                "SCHEDULE_GROUP": SCHEDULE_GROUP,
                "SCHEDULER_ROLE_ARN": SCHEDULER_ROLE,
                "TASK_ROLE_ARNS": TASK_ROLE,
                "EXECUTION_ROLE_ARNS": EXECUTION_ROLE,
                "ACCOUNT_ID": ACCOUNT,
                "SHARED_IMAGE_PREFIXES": SHARED_IMAGES,
                "POWERTOOLS_LOG_LEVEL": os.environ.get("POWERTOOLS_LOG_LEVEL", "WARNING"),
                **address_mode,
                **self.settings,
            }
        )
        self.subnet, self.security_group = subnet, group
        project = self.gitlab.state.add_project(PROJECT_ID, PROJECT_PATH)
        if self.alb:
            for username, (user_id, name, password, level) in PEOPLE.items():
                self.gitlab.state.add_user(user_id, username, name, password)
                if level is not None:
                    project.members[user_id] = level
            self.gitlab.state.add_oauth_app(
                OAUTH_APP["application_id"], OAUTH_APP["secret"], f"{SIGNIN_ISSUER}/callback"
            )
            self.catch_all_rule = ""
            self._catch_all()
        self.cold_start()
        return self

    def _catch_all(self) -> None:
        """The template's CatchAllRule: `*.REVIEW_DOMAIN` at the last priority, to the wake
        function's target group, signing visitors in first when the install does."""
        forward = {"Type": "forward", "TargetGroupArn": self.wake_target_group}
        actions = [forward]
        if self.sign_in:
            issuer = SIGNIN_ISSUER
            oidc = {
                "Issuer": issuer,
                "AuthorizationEndpoint": f"{issuer}/authorize",
                "TokenEndpoint": f"{issuer}/token",
                "UserInfoEndpoint": f"{issuer}/userinfo",
                "ClientId": ALB_CLIENT["client_id"],
                "ClientSecret": ALB_CLIENT["client_secret"],
                "Scope": "openid",
                "SessionCookieName": "ReviewAppsSession",
                "SessionTimeout": int(os.environ.get("REVIEW_APP_SESSION_SECONDS", "3600")),
                "OnUnauthenticatedRequest": "authenticate",
            }
            actions = [
                {"Type": "authenticate-oidc", "Order": 1, "AuthenticateOidcConfig": oidc},
                {**forward, "Order": 2},
            ]
        if self.catch_all_rule:
            self.elbv2.modify_rule(RuleArn=self.catch_all_rule, Actions=actions)
            return
        self.catch_all_rule = self.elbv2.create_rule(
            ListenerArn=self.listener_arn,
            Priority=CATCH_ALL_PRIORITY,
            Conditions=[{"Field": "host-header", "HostHeaderConfig": {"Values": [f"*.{REVIEW_DOMAIN}"]}}],
            Actions=actions,
        )["Rules"][0]["RuleArn"]

    def _roles_and_repositories(self) -> None:
        """The team's roles and ECR repositories, tagged (as a team must) for the projects that may
        use them in review apps."""
        self.iam = boto3.client("iam", region_name=REGION)
        self.ecr = boto3.client("ecr", region_name=REGION)
        trust = json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {"Service": "ecs-tasks.amazonaws.com"}}
                ],
            }
        )
        for arn in (TASK_ROLE, EXECUTION_ROLE):
            self.iam.create_role(
                RoleName=arn.rsplit("/", 1)[-1],
                AssumeRolePolicyDocument=trust,
                Tags=[{"Key": "review-apps:projects", "Value": "awesome_space/"}],
            )
        for repository in TEAM_REPOSITORIES:
            self.ecr.create_repository(
                repositoryName=repository, tags=[{"Key": "review-apps:projects", "Value": "awesome_space/"}]
            )

    def tag_role(self, arn: str, projects: str | None) -> None:
        """Set (or, with None, remove) a role's `review-apps:projects` tag."""
        name = arn.rsplit("/", 1)[-1]
        if projects is None:
            self.iam.untag_role(RoleName=name, TagKeys=["review-apps:projects"])
        else:
            self.iam.tag_role(RoleName=name, Tags=[{"Key": "review-apps:projects", "Value": projects}])

    def repository(self, name: str, projects: str | None) -> str:
        """Another ECR repository of the account, tagged for `projects` (None: untagged); its URI."""
        tags = [{"Key": "review-apps:projects", "Value": projects}] if projects is not None else []
        return self.ecr.create_repository(repositoryName=name, tags=tags)["repository"]["repositoryUri"]

    def _sign_in(self) -> dict[str, str]:
        """What the template's sign-in part makes: the ALB's generated client secret, and the
        operator's SSM parameter with GitLab's OAuth application."""
        secrets = boto3.client("secretsmanager", region_name=REGION)
        arn = secrets.create_secret(Name=f"{INSTALL_ID}-alb-client", SecretString=json.dumps(ALB_CLIENT))["ARN"]
        self.ssm.put_parameter(Name="/review-apps/gitlab-oauth", Value=json.dumps(OAUTH_APP), Type="SecureString")
        kms = boto3.client("kms", region_name=REGION)
        key = kms.create_key(KeySpec="RSA_2048", KeyUsage="SIGN_VERIFY", Description="ID tokens")["KeyMetadata"]
        return {
            "OIDC_ISSUER": SIGNIN_ISSUER,
            "OIDC_CLIENT_SECRET_ARN": arn,
            "OIDC_SIGNING_KEY_ARN": key["Arn"],
            "GITLAB_OAUTH_PARAMETER": "/review-apps/gitlab-oauth",
        }

    @property
    def sign_in(self) -> bool:
        return self.alb and os.environ.get("REVIEW_APP_ACCESS", "members") == "members"

    def edge(self, port: int = 0) -> Any:
        """The load balancer and the sign-in API on one local HTTPS port (started on first use)."""
        if self._edge is None:
            from local.edge import Edge

            self._edge = Edge(self, port)
        return self._edge

    def close(self) -> None:
        if self._edge is not None:
            self._edge.stop()
            self._edge = None

    def _load_balancer(self, vpc: str, subnet: str) -> dict[str, str]:
        """What a platform team shares: an ALB with an HTTPS listener whose certificate covers
        *.REVIEW_DOMAIN and whose default answer is 404. Returns the install's address settings."""
        self.elbv2 = boto3.client("elbv2", region_name=REGION)
        self.cloudwatch = boto3.client("cloudwatch", region_name=REGION)
        acm = boto3.client("acm", region_name=REGION)
        second = self.ec2.create_subnet(VpcId=vpc, CidrBlock="10.20.2.0/24", AvailabilityZone=f"{REGION}b")
        alb_group = self.ec2.create_security_group(GroupName="review-apps-alb", Description="ALB", VpcId=vpc)
        balancer = self.elbv2.create_load_balancer(
            Name="shared-alb",
            Subnets=[subnet, second["Subnet"]["SubnetId"]],
            SecurityGroups=[alb_group["GroupId"]],
            Scheme="internet-facing",
            Type="application",
        )["LoadBalancers"][0]
        certificate = acm.request_certificate(DomainName=f"*.{REVIEW_DOMAIN}")["CertificateArn"]
        self.listener_arn = self.elbv2.create_listener(
            LoadBalancerArn=balancer["LoadBalancerArn"],
            Protocol="HTTPS",
            Port=443,
            Certificates=[{"CertificateArn": certificate}],
            DefaultActions=[
                {
                    "Type": "fixed-response",
                    "FixedResponseConfig": {
                        "StatusCode": "404",
                        "ContentType": "text/plain",
                        "MessageBody": "No review app here",
                    },
                }
            ],
        )["Listeners"][0]["ListenerArn"]
        self.load_balancer_arn = balancer["LoadBalancerArn"]
        # The template's WakeTargetGroup: the wake function as a Lambda target.
        self.wake_target_group = self.elbv2.create_target_group(
            Name="review-apps-local-wake",
            TargetType="lambda",
            Tags=[{"Key": "review-apps:install", "Value": INSTALL_ID}],
        )["TargetGroups"][0]["TargetGroupArn"]
        return {
            "ALB_LISTENER_ARN": self.listener_arn,
            "REVIEW_DOMAIN": REVIEW_DOMAIN,
            "VPC_ID": vpc,
            "MAX_RUNNING_APPS": "20",
            "WAKE_TARGET_GROUP_ARN": self.wake_target_group,
            **self._sign_in(),
        }

    def rules(self, catch_all: bool = False) -> list[dict]:
        """The listener's rules besides its default (and the stack's catch-all, unless asked),
        as ELB describes them: what the install's functions made."""
        rules, marker = [], {}
        while True:
            page = self.elbv2.describe_rules(ListenerArn=self.listener_arn, **marker)
            rules += page["Rules"]
            if not page.get("NextMarker"):
                return [
                    r
                    for r in rules
                    if not r["IsDefault"] and (catch_all or r["RuleArn"] != getattr(self, "catch_all_rule", ""))
                ]
            marker = {"Marker": page["NextMarker"]}

    def target_groups(self) -> list[dict]:
        """Every target group in the account besides the wake function's."""
        pages = self.elbv2.get_paginator("describe_target_groups").paginate()
        return [g for page in pages for g in page["TargetGroups"] if g["TargetGroupArn"] != self.wake_target_group]

    def targets(self, target_group_arn: str) -> list[str]:
        health = self.elbv2.describe_target_health(TargetGroupArn=target_group_arn)["TargetHealthDescriptions"]
        return sorted(f"{h['Target']['Id']}:{h['Target']['Port']}" for h in health)

    def health_check_fails(self, iid: int, reason: str, description: str) -> None:
        """The ALB finds the MR's app unhealthy from now on (until `health_check_passes`)."""
        record = self.record(iid)
        ALB_TARGET_HEALTH[(record["target_group_arn"], record["routed_target"].rsplit(":", 1)[0])] = (
            reason,
            description,
        )

    def hold_health_checks(self, on: bool = True) -> None:
        """From now on, a target registered reports `initial` (as a real ALB's do until their
        first checks pass) until `first_checks_pass`; moto would call it healthy at once."""
        ALB_HOLD_NEW_TARGETS["on"] = on

    def first_checks_pass(self) -> None:
        ALB_UNCHECKED.clear()

    def health_check_passes(self, iid: int) -> None:
        record = self.record(iid)
        ALB_TARGET_HEALTH.pop((record["target_group_arn"], record["routed_target"].rsplit(":", 1)[0]), None)

    def route(self, host: str) -> dict | None:
        """Where the listener sends `host`: its rule, target group and targets; None if nowhere."""
        for rule in self.rules():
            hosts = [
                v
                for c in rule["Conditions"]
                if c["Field"] == "host-header"
                for v in c.get("HostHeaderConfig", {}).get("Values", c.get("Values", []))
            ]
            if host in hosts:
                [action] = [a for a in rule["Actions"] if a["Type"] == "forward"]
                group = action["TargetGroupArn"]
                return {
                    "rule": rule,
                    "priority": int(rule["Priority"]),
                    "target_group": group,
                    "targets": self.targets(group),
                }
        return None

    def deploy_stack(
        self, name: str = INSTALL_ID, function_env: dict[str, str] | None = None, **changes: str
    ) -> dict[str, str]:
        """The CloudFormation stack as `sam deploy` leaves it (in moto): the operator's parameters,
        the template's functions with their configuration (this install's, changed by
        `function_env`), and the template's outputs, which is what make doctor, onboard and smoke
        read. Returns the parameters."""
        from local.edge import SIGNIN_HOST, WEBHOOK_HOST
        from local.lambda_runtime import load_template

        parameters = {
            "GitLabUrl": self.gitlab.url,
            "GitLabTokenParameterName": "/review-apps/gitlab-token",
            "WebhookSecretParameterName": "/review-apps/webhook-secret",
            "WebhookSigningSecretParameterName": "",
            "GitLabOAuthParameterName": "/review-apps/gitlab-oauth" if self.alb else "",
            "ClusterName": CLUSTER,
            "Subnets": self.subnet,
            "SecurityGroups": self.security_group,
            "ReviewAppTaskRoleArns": TASK_ROLE,
            "ReviewAppExecutionRoleArns": EXECUTION_ROLE,
            "SharedImagePrefixes": os.environ.get("SHARED_IMAGE_PREFIXES", ""),
            "AlbListenerArn": self.listener_arn if self.alb else "",
            "ReviewDomain": REVIEW_DOMAIN if self.alb else "",
            "ReviewAppAccess": os.environ.get("REVIEW_APP_ACCESS", "members"),
            "MaxRunningApps": "20",
            **changes,
        }
        outputs = {"WebhookUrl": f"https://{WEBHOOK_HOST}/webhook", "RecordsTableName": TABLE}
        if self.sign_in:
            outputs["SignInCallbackUrl"] = f"https://{SIGNIN_HOST}/auth/callback"
        sam = load_template()
        declared = sam["Globals"]["Function"]["Environment"]["Variables"]
        configuration = {k: os.environ[k] for k in declared if k in os.environ} | (function_env or {})
        iam = boto3.client("iam", region_name=REGION)
        role_name = f"{name}-functions"
        try:
            role = iam.get_role(RoleName=role_name)["Role"]["Arn"]
        except iam.exceptions.NoSuchEntityException:
            role = iam.create_role(RoleName=role_name, AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        functions = {
            logical: {
                "Type": "AWS::Lambda::Function",
                "Properties": {
                    "Runtime": "python3.13",
                    "Handler": resource["Properties"]["Handler"],
                    "Role": role,
                    "Code": {"ZipFile": "# the functions' code is not run by moto"},
                    "Environment": {
                        "Variables": configuration
                        | {
                            k: str(v)
                            for k, v in resource["Properties"].get("Environment", {}).get("Variables", {}).items()
                            if isinstance(v, str)
                        }
                    },
                },
            }
            for logical, resource in sam["Resources"].items()
            if resource["Type"] == "AWS::Serverless::Function"
        }
        template = {
            "AWSTemplateFormatVersion": "2010-09-09",
            "Parameters": {key: {"Type": "String", "Default": ""} for key in parameters},
            "Resources": {"Marker": {"Type": "AWS::SNS::Topic"}, **functions},
            "Outputs": {key: {"Value": value} for key, value in outputs.items()},
        }
        boto3.client("cloudformation", region_name=REGION).create_stack(
            StackName=name,
            TemplateBody=json.dumps(template),
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        )
        return parameters

    def redeploy(self, **settings: str) -> None:
        """`sam deploy` with changed parameters: same AWS and GitLab, fresh functions."""
        self.settings.update(settings)
        os.environ.update(settings)
        if self.alb:
            self._catch_all()  # CloudFormation updates the catch-all's sign-in with the parameters
        self.cold_start()

    def cold_start(self) -> None:
        """Load the handlers anew, as Lambda does in a fresh container."""
        self.webhook_handler = load_handler("WebhookFunction")
        self.task_events_handler = load_handler("TaskEventsFunction")
        self.reconcile_handler = load_handler("ReconcileFunction")
        if self.alb:
            self.wake_handler = self.load_wake_handler()
        if self.sign_in:
            self.auth_handler = self.load_auth_handler()

    def load_auth_handler(self) -> Any:
        """AuthFunction as the template configures it: without OIDC_ISSUER (its API names it)."""
        return _load_without("AuthFunction", "OIDC_ISSUER")

    def load_wake_handler(self) -> Any:
        """WakeFunction as the template configures it: without WAKE_TARGET_GROUP_ARN."""
        return _load_without("WakeFunction", "WAKE_TARGET_GROUP_ARN")

    def visit(self, host: str, path: str = "/", handler: Any = None) -> dict:
        """A browser opens https://<host><path> and the listener's rule sends it to the wake
        function (only sleeping apps' rules do). Returns the function's answer to the ALB."""
        return (handler or self.wake_handler)(
            events.alb_request(host, path), LambdaContext(function_name="WakeFunction")
        )

    def requests_served(self, target_group_arn: str, count: int, at: datetime) -> None:
        """The ALB's per-minute RequestCount for a target group, as it publishes it."""
        self.cloudwatch.put_metric_data(
            Namespace="AWS/ApplicationELB",
            MetricData=[
                {
                    "MetricName": "RequestCount",
                    "Timestamp": at,
                    "Value": count,
                    "Unit": "Count",
                    "Dimensions": [
                        {"Name": "TargetGroup", "Value": "targetgroup/" + target_group_arn.split(":targetgroup/")[1]},
                        {"Name": "LoadBalancer", "Value": self.load_balancer_arn.split(":loadbalancer/")[1]},
                    ],
                }
            ],
        )

    def register_base_task_definition(
        self, family: str = BASE_FAMILY, projects: str | None = "awesome_space/", **overrides: Any
    ) -> str:
        """A team's own task definition, tagged (as a team must) for the projects that may
        build review apps from it; `projects=None` leaves it untagged."""
        container = {
            "name": "web",
            "image": "111122223333.dkr.ecr.us-east-1.amazonaws.com/shop:latest",
            "essential": True,
            "memory": 512,
            "command": ["gunicorn", "--bind", "0.0.0.0:8000", "shop.wsgi"],
            "portMappings": [{"containerPort": 8000, "protocol": "tcp"}],
        }
        kwargs = {
            "family": family,
            "networkMode": "awsvpc",
            "requiresCompatibilities": ["FARGATE"],
            "cpu": "256",
            "memory": "512",
            "containerDefinitions": [container],
        }
        if projects is not None:
            kwargs["tags"] = [{"key": "review-apps:projects", "value": projects}]
        kwargs.update(overrides)
        return self.ecs.register_task_definition(**kwargs)["taskDefinition"]["taskDefinitionArn"]

    def schedules(self) -> dict[str, dict]:
        """The install's deadline schedules by name, as Scheduler holds them."""
        names = [s["Name"] for s in self.scheduler.list_schedules(GroupName=SCHEDULE_GROUP)["Schedules"]]
        return {name: self.scheduler.get_schedule(Name=name, GroupName=SCHEDULE_GROUP) for name in names}

    def fire_schedule(self, name: str) -> dict:
        """Scheduler's turn at the deadline: the StopTask its target names, then the schedule goes
        (ActionAfterCompletion DELETE). Returns the StopTask request it made."""
        schedule = self.scheduler.get_schedule(Name=name, GroupName=SCHEDULE_GROUP)
        assert schedule["Target"]["Arn"] == "arn:aws:scheduler:::aws-sdk:ecs:stopTask"
        request = json.loads(schedule["Target"]["Input"])
        self.ecs.stop_task(cluster=request["Cluster"], task=request["Task"], reason=request["Reason"])
        self.scheduler.delete_schedule(Name=name, GroupName=SCHEDULE_GROUP)
        return request

    # ------------------------------------------------------------------ GitLab side

    def commit(
        self, sha: str, spec: str | None = SPEC, extra_files: dict[str, str] | None = None, project: int = PROJECT_ID
    ) -> str:
        files = dict(extra_files or {})
        if spec is not None:
            files[".gitlab/review-app.yml"] = spec
        self.gitlab.state.add_commit(project, sha, files)
        return sha

    def open_mr(
        self, iid: int, sha: str, branch: str = "feature/checkout", source_project_id: int | None = None
    ) -> dict:
        self.gitlab.state.open_merge_request(
            PROJECT_ID, iid, sha=sha, source_branch=branch, source_project_id=source_project_id
        )
        return self.send_mr(iid, "open")

    def mr(self, iid: int) -> dict:
        return self.gitlab.state.merge_requests[(PROJECT_ID, iid)]

    def push(self, iid: int, sha: str) -> dict:
        mr = self.mr(iid)
        old = mr["sha"]
        mr["sha"] = sha
        return self.send_mr(iid, "update", oldrev=old)

    def send_mr(self, iid: int, action: str, **kwargs: Any) -> dict:
        mr = self.mr(iid)
        if action in ("close", "merge"):
            mr["state"] = {"close": "closed", "merge": "merged"}[action]
        if action == "reopen":
            mr["state"] = "opened"
        body = events.merge_request_hook(
            action,
            project_id=PROJECT_ID,
            iid=iid,
            sha=mr["sha"],
            source_branch=mr["source_branch"],
            project_path=PROJECT_PATH,
            source_project_id=mr["source_project_id"],
            labels=kwargs.pop("labels", mr["labels"]),
            draft=kwargs.pop("draft", mr["draft"]),
            **kwargs,
        )
        return self.deliver(body, "Merge Request Hook")

    def comment(self, iid: int, text: str, user_id: int = 51, username: str = "alice") -> dict:
        mr = self.mr(iid)
        body = events.note_hook(
            text,
            project_id=PROJECT_ID,
            iid=iid,
            sha=mr["sha"],
            source_branch=mr["source_branch"],
            project_path=PROJECT_PATH,
        )
        body["object_attributes"]["author_id"] = user_id
        body["user"] = {**body["user"], "id": user_id, "username": username}
        return self.deliver(body, "Note Hook")

    def relabel(self, iid: int, labels: list[str]) -> dict:
        mr = self.mr(iid)
        previous, mr["labels"] = mr["labels"], list(labels)
        return self.send_mr(iid, "update", previous_labels=previous)

    def mark_ready(self, iid: int) -> dict:
        self.mr(iid)["draft"] = False
        return self.send_mr(iid, "update", was_draft=True)

    def pipeline(self, iid: int, status: str = "success", sha: str | None = None) -> dict:
        mr = self.mr(iid)
        body = events.pipeline_hook(
            status,
            project_id=PROJECT_ID,
            iid=iid,
            sha=sha or mr["sha"],
            source_branch=mr["source_branch"],
            project_path=PROJECT_PATH,
        )
        return self.deliver(body, "Pipeline Hook")

    def deliver(self, body: Any, gitlab_event: str, token: str | None = WEBHOOK_SECRET, **headers: str) -> dict:
        """POST a webhook through the real WebhookFunction; returns status and decoded body."""
        self.webhooks_sent = getattr(self, "webhooks_sent", 0) + 1
        request = events.api_event(body, gitlab_event, token or "", headers)
        if token is None:
            request["headers"].pop("x-gitlab-token", None)
        response = self.webhook_handler(request, LambdaContext(function_name="WebhookFunction"))
        return {
            "status": response["statusCode"],
            "body": json.loads(response["body"] or "{}"),
            "headers": response.get("headers") or {},
        }

    def note(self, iid: int) -> str | None:
        """The review-app note's current text on the MR, as a reviewer would read it."""
        notes = [n for n in self.gitlab.state.notes[(PROJECT_ID, iid)] if "review-app:note" in n["body"]]
        assert len(notes) <= 1, f"{len(notes)} review-app notes on MR {iid}"
        return notes[0]["body"] if notes else None

    def notes(self, iid: int) -> list[dict]:
        return self.gitlab.state.notes[(PROJECT_ID, iid)]

    def environment(self, name: str) -> dict | None:
        return next((e for e in self.gitlab.state.environments.get(PROJECT_ID, []) if e["name"] == name), None)

    def commit_statuses(self, sha: str) -> list[dict]:
        return self.gitlab.state.statuses.get((PROJECT_ID, sha), [])

    def deployments(self) -> list[dict]:
        return self.gitlab.state.deployments.get(PROJECT_ID, [])

    # ------------------------------------------------------------------ ECS side

    def tasks(self, desired_status: str = "RUNNING") -> list[dict]:
        arns = self.ecs.list_tasks(cluster=CLUSTER, desiredStatus=desired_status)["taskArns"]
        return self.ecs.describe_tasks(cluster=CLUSTER, tasks=arns)["tasks"] if arns else []

    def task(self, task_arn: str) -> dict:
        return self.ecs.describe_tasks(cluster=CLUSTER, tasks=[task_arn])["tasks"][0]

    def task_event(self, task_arn: str, last_status: str, **kwargs: Any) -> dict:
        """Build the state-change event ECS would emit for the emulated task and deliver it."""
        return self.deliver_task_event(self.task_state_event(task_arn, last_status, **kwargs))

    def stopped_as_asked(self, task_arn: str, reason: str = "Review app asleep: no visit for 15 minutes") -> dict:
        """ECS's STOPPED event for a task the install stopped (StopTask): SIGTERM ends the app with 143."""
        return self.task_event(
            task_arn, "STOPPED", exit_codes={"web": 143}, stop_code="UserInitiated", stopped_reason=reason
        )

    def task_state_event(self, task_arn: str, last_status: str, **kwargs: Any) -> dict:
        """The state-change event ECS would emit for the emulated task (not delivered)."""
        version = self._versions.get(task_arn, 1) + 1
        self._versions[task_arn] = version
        if last_status == "STOPPED":  # keep the emulator in step with the event it "emitted"
            reason = kwargs.get("stopped_reason") or "Essential container in task exited"
            self.ecs.stop_task(cluster=CLUSTER, task=task_arn, reason=reason)
        return events.task_state_change(self.task(task_arn), last_status=last_status, version=version, **kwargs)

    def deliver_task_event(self, event: dict) -> dict:
        return self.task_events_handler(event, LambdaContext(function_name="TaskEventsFunction"))

    def reconcile(self) -> dict:
        """One scheduled run of the real ReconcileFunction."""
        return self.reconcile_handler(
            {"source": "aws.events", "detail-type": "Scheduled Event"}, LambdaContext(function_name="ReconcileFunction")
        )

    def expire(self, task_arn: str, container: str = "web") -> dict:
        """The TTL runs out: `timeout` ends the app with 124 and the task stops, TTL seconds
        after it started (the emulator's clock does not move, so the event says when)."""
        started = self.task(task_arn).get("startedAt") or datetime.now(UTC)
        record = next((r for r in self._records() if r.get("task_arn") == task_arn), None)
        stopped_at = started + timedelta(seconds=int(record["ttl_seconds"])) if record else None
        return self.task_event(
            task_arn,
            "STOPPED",
            exit_codes={container: 124},
            stop_code="EssentialContainerExited",
            stopped_at=stopped_at,
        )

    def time_passes(self, iid: int, past_deadline: int = 60) -> None:
        """Time moves on until the MR's deadline is `past_deadline` seconds ago. The functions
        read the real clock, so the record's timeline moves back instead."""
        record = self.record(iid)
        shift = int(record["deadline"]) - (int(time.time()) - past_deadline)
        moved = {name: int(record[name]) - shift for name in ("deadline", "launched_at", "live_at") if record[name]}
        self.dynamodb.update_item(
            TableName=TABLE,
            Key={"pk": {"S": f"mr#{PROJECT_ID}/{iid}"}},
            UpdateExpression="SET " + ", ".join(f"{name} = :{name}" for name in moved),
            ExpressionAttributeValues={f":{name}": {"N": str(value)} for name, value in moved.items()},
        )

    def live_for(self, iid: int, minutes: int) -> None:
        """The MR's app went live `minutes` ago: its timeline moves back (the functions read the
        real clock); its deadline stays where it is."""
        record = self.record(iid)
        shift = int(time.time()) - minutes * 60 - int(record["live_at"])
        moved = {n: int(record[n]) + shift for n in ("live_at", "launched_at", "first_live_at") if record.get(n)}
        self.dynamodb.update_item(
            TableName=TABLE,
            Key={"pk": {"S": f"mr#{PROJECT_ID}/{iid}"}},
            UpdateExpression="SET " + ", ".join(f"{n} = :{n}" for n in moved),
            ExpressionAttributeValues={f":{n}": {"N": str(v)} for n, v in moved.items()},
        )

    def running_slots(self, scope: str = "all") -> set[str]:
        item = self.dynamodb.get_item(TableName=TABLE, Key={"pk": {"S": f"slots#{scope}"}}).get("Item", {})
        return set(item.get("holders", {}).get("SS", []))

    def asleep_like(self, iid: int, iids: range) -> None:
        """Open MRs `iids`, each asleep as MR `iid` is (as if each had run, slept, and its MR been
        told so): written straight to the table, for tests and the benchmark about many open MRs,
        where launching and sleeping each through the handlers would take minutes in moto."""
        import dataclasses

        from review_apps.adapters.store import RecordStore
        from review_apps.lifecycle import Caps, addresses
        from review_apps.messages import commit_status_marker, digest, gitlab_view, render_note
        from review_apps.model.record import Record

        base = Record.from_item(self.record(iid))
        assert base.status == "asleep", base.status
        store = RecordStore(TABLE, self.dynamodb, Caps())
        for n in iids:
            branch = f"feature/{n}"
            self.gitlab.state.open_merge_request(PROJECT_ID, n, sha=base.commit_sha, source_branch=branch)
            host = addresses.hostname(base.project_path, PROJECT_ID, n, REVIEW_DOMAIN)
            record = dataclasses.replace(base, mr_iid=n, host=host, url=f"https://{host}", source_branch=branch, rev=0)
            view = gitlab_view(record)
            record.note_digest = digest(render_note(record))
            if view.commit_status:
                record.commit_status = commit_status_marker(record, view.commit_status)
            store.save(record)

    def all_records(self) -> list[dict]:
        """Every MR record in the table (not the slot sets or the delivery memory)."""
        return [r for r in self._records() if str(r.get("pk", "")).startswith("mr#")]

    def _records(self) -> list[dict]:
        deserializer = TypeDeserializer()
        pages = self.dynamodb.get_paginator("scan").paginate(TableName=TABLE)  # 1 MB a page
        return [{k: deserializer.deserialize(v) for k, v in item.items()} for page in pages for item in page["Items"]]

    def record(self, iid: int, project_id: int = PROJECT_ID) -> dict | None:
        item = self.dynamodb.get_item(TableName=TABLE, Key={"pk": {"S": f"mr#{project_id}/{iid}"}}).get("Item")
        if not item:
            return None
        deserializer = TypeDeserializer()
        return {k: deserializer.deserialize(v) for k, v in item.items()}


def _load_without(function: str, variable: str) -> Any:
    """Load `function` with `variable` unset, as the template overrides it with an empty value."""
    saved = os.environ.pop(variable, None)
    try:
        return load_handler(function)
    finally:
        if saved is not None:
            os.environ[variable] = saved


@contextmanager
def running_world(alb: bool = False, **settings: str) -> Iterator[World]:
    saved = dict(os.environ)  # the install sets its configuration there; the next one starts clean
    moto = MotoServer()
    gitlab = GitLabStandIn(GITLAB_TOKEN).start()
    world = World(moto, gitlab, alb=alb, **settings)
    try:
        yield world.install()
    finally:
        world.close()
        gitlab.stop()
        moto.stop()
        os.environ.clear()
        os.environ.update(saved)

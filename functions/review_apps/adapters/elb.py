"""Elastic Load Balancing v2 calls: each MR's target group and host-header rule on the install's
HTTPS listener, its app's IP in and out, and finding this install's routes for the sweep. What
an MR should hold is decided in lifecycle.addresses.route_wanted and carried out in flows.routes.

Everything created carries the install's tag (the IAM policy lets these calls touch nothing
without it) and the MR's. Every call here is idempotent, so a retried event or a second
function doing the same thing at the same moment converges on one route per MR.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from botocore.exceptions import ClientError

from review_apps.lifecycle import access, addresses
from review_apps.settings import Settings
from review_apps.taskdef import INSTALL_TAG

MR_TAG = "review-apps:mr"
HEALTHY_CODES = "200-399"
# A replaced app's old address should leave at once, not after the default 300 s.
DEREGISTRATION_DELAY_SECONDS = 5
# Quick first health check: a new target is routed after one passing check.
HEALTH_CHECK_INTERVAL_SECONDS = 10
# A listener rule that a full listener refuses, by error code, and what it means for the MR.
_FULL = {
    "TooManyRules": "it has as many listener rules as its quota allows",
    "TooManyTargetGroups": "it has 100 target groups, the most an ALB can hold",
    "TooManyTargets": "it has as many targets as its quota allows",
}
_TAG_BATCH = 20  # DescribeTags takes at most 20 ARNs
PAGE_SIZE = 400  # the most DescribeRules and DescribeTargetGroups return at once
# The load balancer's own session cookie for review hosts (one per host: ALB cookies have no Domain).
SESSION_COOKIE = "ReviewAppsSession"


class NoRoute(Exception):
    """The MR's route can't be made; `problem()` says why, for the MR."""

    def problem(self, consequence: str = "") -> str:
        return addresses.listener_full_problem(str(self), consequence)


class ListenerFull(NoRoute):
    """The load balancer has no room for another MR's route; str() says which quota."""


class RouteTaken(NoRoute):
    """Something of the MR's route exists and is not this install's: str() says what."""

    def problem(self, consequence: str = "") -> str:
        return addresses.route_taken_problem(str(self), consequence)


class TargetGroupGone(Exception):
    """The MR's target group no longer exists (the sweep removed it while the app launched)."""


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class Elb:
    def __init__(
        self, settings: Settings, client: Any, oidc_client: Callable[[], dict[str, str]] | None = None
    ) -> None:
        """`oidc_client`: the load balancer's client id and secret at the install's sign-in
        provider; given, every rule signs the visitor in before it forwards."""
        self._settings = settings
        self._client = client
        self._oidc_client = oidc_client

    def _sign_in_client(self, host: str) -> tuple[str, str]:
        """The sign-in client of `host`'s own rule (access.host_client)."""
        install = self._oidc_client() if self._oidc_client else {}
        return access.host_client(install["client_id"], install["client_secret"], host)

    def _actions(self, target_group_arn: str, host: str) -> list[dict[str, Any]]:
        """What a review host's rule does: sign in (when members only) with the host's own client,
        then forward. One place, so a rule that forwards to the app, to the wake function or
        anywhere else signs in alike."""
        if self._oidc_client is None:
            return [{"Type": "forward", "TargetGroupArn": target_group_arn}]
        (client_id, client_secret), issuer = self._sign_in_client(host), self._settings.oidc_issuer
        return [
            {
                "Type": "authenticate-oidc",
                "Order": 1,
                "AuthenticateOidcConfig": {
                    "Issuer": issuer,
                    "AuthorizationEndpoint": f"{issuer}/authorize",
                    "TokenEndpoint": f"{issuer}/token",
                    "UserInfoEndpoint": f"{issuer}/userinfo",
                    "ClientId": client_id,
                    "ClientSecret": client_secret,
                    "Scope": "openid",
                    "SessionCookieName": SESSION_COOKIE,
                    "SessionTimeout": self._settings.alb_session_seconds,
                    "OnUnauthenticatedRequest": "authenticate",
                },
            },
            {"Type": "forward", "Order": 2, "TargetGroupArn": target_group_arn},
        ]

    def _tags(self, project_id: int, mr_iid: int) -> list[dict[str, str]]:
        return [
            {"Key": INSTALL_TAG, "Value": self._settings.install_id},
            {"Key": MR_TAG, "Value": f"{project_id}/{mr_iid}"},
        ]

    # ------------------------------------------------------------------ one MR's route

    def ensure_target_group(self, project_id: int, mr_iid: int, port: int, health_check: str) -> str:
        """The MR's target group, made if missing, checking `health_check`."""
        name = addresses.target_group_name(self._settings.install_id, project_id, mr_iid)
        existing = self._find_target_group(name)
        if existing and not self._ours([existing], "TargetGroupArn"):
            # Names are the account's, not ours: someone else's group is never routed to.
            raise RouteTaken(f"a target group named `{name}` exists in this account and is not this install's")
        if existing:
            if existing.get("HealthCheckPath") != health_check:
                self._client.modify_target_group(
                    TargetGroupArn=existing["TargetGroupArn"], HealthCheckPath=health_check
                )
            return str(existing["TargetGroupArn"])
        try:
            created = self._client.create_target_group(
                Name=name,
                Protocol="HTTP",
                Port=port,
                VpcId=self._settings.vpc_id,
                TargetType="ip",
                HealthCheckProtocol="HTTP",
                HealthCheckPath=health_check,
                HealthCheckIntervalSeconds=HEALTH_CHECK_INTERVAL_SECONDS,
                HealthCheckTimeoutSeconds=5,
                HealthyThresholdCount=2,
                UnhealthyThresholdCount=2,
                Matcher={"HttpCode": HEALTHY_CODES},
                Tags=self._tags(project_id, mr_iid),
            )
        except ClientError as exc:
            if _code(exc) == "DuplicateTargetGroupName":  # another function made it a moment ago
                found = self._find_target_group(name)
                if found:
                    return str(found["TargetGroupArn"])
            if _code(exc) in _FULL:
                raise ListenerFull(_FULL[_code(exc)]) from None
            raise
        arn = str(created["TargetGroups"][0]["TargetGroupArn"])
        self._client.modify_target_group_attributes(
            TargetGroupArn=arn,
            Attributes=[{"Key": "deregistration_delay.timeout_seconds", "Value": str(DEREGISTRATION_DELAY_SECONDS)}],
        )
        return arn

    def _find_target_group(self, name: str) -> dict[str, Any]:
        try:
            found = self._client.describe_target_groups(Names=[name])["TargetGroups"]
        except ClientError as exc:
            if _code(exc) == "TargetGroupNotFound":
                return {}
            raise
        return dict(found[0]) if found else {}

    def _rules(self) -> Iterator[dict[str, Any]]:
        marker: str | None = None
        while True:
            page = self._client.describe_rules(
                ListenerArn=self._settings.alb_listener_arn,
                PageSize=PAGE_SIZE,
                **({"Marker": marker} if marker else {}),
            )
            yield from page.get("Rules", [])
            marker = page.get("NextMarker")
            if not marker:
                return

    def check_host_free(self, host: str) -> list[dict[str, Any]]:
        """This install's rules for `host`. Raises RouteTaken when a rule this install did not make
        routes it: another team's (or another install's) rule decides where it goes, is never
        taken over, and a rule of ours for it would never be reached."""
        same_host = [rule for rule in self._rules() if host in _hosts(rule)]
        ours = self._ours(same_host) if same_host else []
        if len(ours) < len(same_host):
            raise RouteTaken(f"`{host}` is already routed by a load balancer rule this install did not make")
        return ours

    def ensure_rule(self, project_id: int, mr_iid: int, host: str, target_group: str) -> str:
        """The host's own rule, forwarding to `target_group`, made if missing."""
        for rule in self.check_host_free(host):
            if target_group not in _forwards_to(rule) or not self._sign_in_as_set(rule):
                self.forward(rule["RuleArn"], target_group, host)
            return str(rule["RuleArn"])
        for priority in addresses.priorities(self._settings.install_id, project_id, mr_iid):
            try:
                created = self._client.create_rule(
                    ListenerArn=self._settings.alb_listener_arn,
                    Priority=priority,
                    Conditions=[{"Field": "host-header", "HostHeaderConfig": {"Values": [host]}}],
                    Actions=self._actions(target_group, host),
                    Tags=self._tags(project_id, mr_iid),
                )
            except ClientError as exc:
                if _code(exc) == "PriorityInUse":
                    continue
                if _code(exc) in _FULL:
                    raise ListenerFull(_FULL[_code(exc)]) from None
                raise
            return str(created["Rules"][0]["RuleArn"])
        raise ListenerFull("every rule priority review apps may use is taken")

    def _sign_in_as_set(self, rule: dict[str, Any]) -> bool:
        """The rule signs visitors in exactly when the install does, against this install's issuer,
        with its host's own client."""
        configs = [
            a.get("AuthenticateOidcConfig", {}) for a in rule.get("Actions", []) if a.get("Type") == "authenticate-oidc"
        ]
        if self._oidc_client is None:
            return not configs
        hosts = _hosts(rule)
        own = self._sign_in_client(hosts[0])[0] if hosts else ""
        return [(c.get("Issuer"), c.get("ClientId")) for c in configs] == [(self._settings.oidc_issuer, own)]

    def forward(self, rule_arn: str, target_group_arn: str, host: str = "") -> None:
        """(Re)write the rule's actions: sign-in as the install has it, then forward. `host`: the
        rule's (read from the rule when not given)."""
        if not host:
            [rule] = self._client.describe_rules(RuleArns=[rule_arn])["Rules"]
            host = (_hosts(rule) or [""])[0]
        self._client.modify_rule(RuleArn=rule_arn, Actions=self._actions(target_group_arn, host))

    def _ours(self, resources: list[dict[str, Any]], key: str = "RuleArn") -> list[dict[str, Any]]:
        """Those of `resources` that carry this install's tag (DescribeTags, 20 at a time)."""
        by_arn = {r[key]: r for r in resources}
        arns, ours = sorted(by_arn), []
        for start in range(0, len(arns), _TAG_BATCH):
            for item in self._client.describe_tags(ResourceArns=arns[start : start + _TAG_BATCH])["TagDescriptions"]:
                tags = {t["Key"]: t["Value"] for t in item.get("Tags", [])}
                if tags.get(INSTALL_TAG) == self._settings.install_id:
                    ours.append(by_arn[item["ResourceArn"]])
        return ours

    # ------------------------------------------------------------------ the app's address in and out

    def route_to(self, target_group_arn: str, ip: str, port: int) -> list[dict[str, Any]]:
        """Make `ip:port` the target group's only target: the new app in, a replaced one out.
        Returns the DescribeTargetHealth descriptions it read once the new target was in, so the
        caller can judge its health without asking again."""
        try:
            self._client.register_targets(TargetGroupArn=target_group_arn, Targets=[{"Id": ip, "Port": port}])
            health = self.target_health(target_group_arn, missing_raises=True)
        except ClientError as exc:
            if _code(exc) == "TargetGroupNotFound":
                raise TargetGroupGone(target_group_arn) from None
            raise
        stale = [t for t in _live_targets(health) if (t["Id"], t.get("Port")) != (ip, port)]
        if stale:
            self._client.deregister_targets(TargetGroupArn=target_group_arn, Targets=stale)
        return health

    def deregister(self, target_group_arn: str, target: str) -> None:
        """Take one `ip:port` out (a replaced app, while its successor starts)."""
        ip, _, port = target.rpartition(":")
        try:
            self._client.deregister_targets(TargetGroupArn=target_group_arn, Targets=[{"Id": ip, "Port": int(port)}])
        except ClientError as exc:
            if _code(exc) not in ("TargetGroupNotFound", "InvalidTarget"):
                raise

    def target_health(self, target_group_arn: str, missing_raises: bool = False) -> list[dict[str, Any]]:
        """DescribeTargetHealth's descriptions; none once the group is gone (unless `missing_raises`)."""
        try:
            answer = self._client.describe_target_health(TargetGroupArn=target_group_arn)
        except ClientError as exc:
            if _code(exc) == "TargetGroupNotFound" and not missing_raises:
                return []
            raise
        return list(answer["TargetHealthDescriptions"])

    # ------------------------------------------------------------------ removing routes

    def remove_route(self, target_group_arn: str, rule_arns: Iterable[str] = ()) -> None:
        """Delete the rules, then the target group (which the ALB refuses while a rule forwards
        to it). Gone already is fine."""
        for arn in sorted({arn for arn in rule_arns if arn}):
            self.delete_rule(arn)
        if target_group_arn:
            self.delete_target_group(target_group_arn)

    def own_rules(self) -> list[str]:
        """Every rule on the listener that carries this install's tag, wherever it forwards."""
        rules = [rule for rule in self._rules() if not rule.get("IsDefault")]
        return sorted(rule["RuleArn"] for rule in self._ours(rules)) if rules else []

    def delete_rule(self, rule_arn: str) -> None:
        try:
            self._client.delete_rule(RuleArn=rule_arn)
        except ClientError as exc:
            if _code(exc) != "RuleNotFound":
                raise

    def delete_target_group(self, arn: str) -> None:
        try:
            self._client.delete_target_group(TargetGroupArn=arn)
        except ClientError as exc:
            if _code(exc) != "TargetGroupNotFound":
                raise

    def routes(self) -> list[addresses.Route]:
        """What this install holds on the load balancer, per MR: target groups (by name prefix,
        then its tag as proof) and host rules (by host, then its tag). A few calls whatever the
        number of MRs: pages of 400, tags 20 at a time."""
        install, domain = self._settings.install_id, self._settings.review_domain
        named: dict[str, tuple[int, int]] = {}
        pages = self._client.get_paginator("describe_target_groups").paginate(PaginationConfig={"PageSize": PAGE_SIZE})
        for page in pages:
            for group in page["TargetGroups"]:
                mr = addresses.parse_target_group_name(group["TargetGroupName"], install)
                if mr is not None:
                    named[group["TargetGroupArn"]] = mr
        found: dict[tuple[int, int], dict[str, Any]] = {}
        for group in self._ours([{"TargetGroupArn": arn} for arn in named], "TargetGroupArn") if named else []:
            found[named[group["TargetGroupArn"]]] = {"group": group["TargetGroupArn"], "rules": [], "unlike": []}
        by_rule: dict[str, tuple[int, int]] = {}
        hosted: list[dict[str, Any]] = []
        for rule in self._rules():
            mrs = [mr for mr in (addresses.parse_host(h, domain) for h in _hosts(rule)) if mr]
            if mrs and not rule.get("IsDefault"):
                by_rule[rule["RuleArn"]] = mrs[0]
                hosted.append(rule)
        for rule in self._ours(hosted) if hosted else []:
            entry = found.setdefault(by_rule[rule["RuleArn"]], {"group": "", "rules": [], "unlike": []})
            entry["rules"].append(rule["RuleArn"])
            if not self._sign_in_as_set(rule) and _forwards_to(rule):
                entry["unlike"].append((rule["RuleArn"], _forwards_to(rule)[0]))
        return [
            addresses.Route(mr, e["group"], tuple(sorted(e["rules"])), tuple(sorted(e["unlike"])))
            for mr, e in sorted(found.items())
        ]


def _live_targets(health: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The targets of DescribeTargetHealth's descriptions that are not already draining."""
    return [
        {"Id": h["Target"]["Id"], "Port": h["Target"]["Port"]}
        for h in health
        if h.get("TargetHealth", {}).get("State") != "draining"
    ]


def _hosts(rule: dict[str, Any]) -> list[str]:
    hosts: list[str] = []
    for condition in rule.get("Conditions", []):
        if condition.get("Field") == "host-header":
            hosts += condition.get("HostHeaderConfig", {}).get("Values", []) or condition.get("Values", [])
    return hosts


def _forwards_to(rule: dict[str, Any]) -> list[str]:
    arns = []
    for action in rule.get("Actions", []):
        if action.get("Type") != "forward":
            continue
        if action.get("TargetGroupArn"):
            arns.append(action["TargetGroupArn"])
        for group in action.get("ForwardConfig", {}).get("TargetGroups", []):
            arns.append(group["TargetGroupArn"])
    return sorted(set(arns))

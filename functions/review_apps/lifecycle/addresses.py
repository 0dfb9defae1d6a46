"""Stable addresses on an Application Load Balancer, as pure rules: each MR's host, the names of
what routes to it, where its listener rule may sit, and which routes the reconciler removes.

The host is a single DNS label under the install's domain (a wildcard certificate covers one
level), computed from what a GitLab CI job of the MR's pipeline also knows, so a team can put the
same address in `environment: url:` and get GitLab's "View app" button. The README's job and
`host_label` must agree: tests run that job's shell against this function.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from review_apps.model.record import Record
from review_apps.model.values import Status

DNS_LABEL_MAX = 63
TARGET_GROUP_NAME_MAX = 32
# Priorities our rules take on a listener the operator may share: rules they keep below this are
# evaluated first (ours only ever match their own host, so order matters only for theirs).
PRIORITY_MIN = 10_000
PRIORITY_MAX = 49_999
# A launch makes its target group a moment after it claims the record: the sweep leaves a route
# missing that young for the launch to make.
ROUTE_GRACE_SECONDS = 120

_NOT_ALNUM = re.compile(r"[^a-z0-9]+")
_TARGET_GROUP = re.compile(r"^ra-([0-9a-f]{6})-(\d+)-(\d+)$")


def host_label(project_path: str, project_id: int, mr_iid: int) -> str:
    """`<project name>-mr<iid>-p<project id>`: readable, unique (the ids), at most 63 characters.

    The name is the path's last part, lower-cased (ASCII only, as `tr A-Z a-z`), each run of other
    characters one `-`, cut to fit; the ids at the end make it unique whatever the name is."""
    suffix = f"mr{mr_iid}-p{project_id}"
    last = project_path.rsplit("/", 1)[-1]
    lowered = "".join(chr(ord(c) + 32) if "A" <= c <= "Z" else c for c in last)
    name = _NOT_ALNUM.sub("-", lowered).lstrip("-")
    name = name[: DNS_LABEL_MAX - len(suffix) - 1].rstrip("-")
    return f"{name}-{suffix}" if name else suffix


def hostname(project_path: str, project_id: int, mr_iid: int, domain: str) -> str:
    return f"{host_label(project_path, project_id, mr_iid)}.{domain}"


_HOST_IDS = re.compile(r"(?:^|-)mr(\d{1,12})-p(\d{1,12})$")


def normalize_host(host: str) -> str:
    """A request's Host header as we name hosts: lower case, without a port."""
    name = host.strip().lower()
    return name.rsplit(":", 1)[0] if name.count(":") == 1 else name


def parse_host(host: str, domain: str) -> tuple[int, int] | None:
    """(project id, MR iid) of one of our hosts, from a request's Host header (port and case
    ignored); None for anything else. The caller still checks the record names this very host."""
    label, dot, rest = normalize_host(host).partition(".")
    if not dot or rest != domain or len(label) > DNS_LABEL_MAX:
        return None
    match = _HOST_IDS.search(label)
    return (int(match.group(2)), int(match.group(1))) if match else None


def _install_tag(install: str) -> str:
    return hashlib.sha256(install.encode()).hexdigest()[:6]


def target_group_name(install: str, project_id: int, mr_iid: int) -> str:
    """`ra-<install hash>-<project>-<iid>`: target group names are unique per account and region
    and at most 32 characters, so the install is a short hash (its tag is the real proof)."""
    name = f"ra-{_install_tag(install)}-{project_id}-{mr_iid}"
    if len(name) > TARGET_GROUP_NAME_MAX:  # ids this long don't occur in GitLab; refuse, don't truncate
        raise ValueError(f"target group name {name!r} is longer than {TARGET_GROUP_NAME_MAX} characters")
    return name


def parse_target_group_name(name: str, install: str) -> tuple[int, int] | None:
    """(project id, MR iid) of one of this install's target groups; None for anything else."""
    match = _TARGET_GROUP.match(name)
    if not match or match.group(1) != _install_tag(install):
        return None
    return int(match.group(2)), int(match.group(3))


def priorities(install: str, project_id: int, mr_iid: int) -> Iterator[int]:
    """Rule priorities to try, in order. The start is spread by a hash so concurrent launches
    rarely want the same one; the listener refuses a taken priority (PriorityInUse), and the next
    one in the band is tried. Every priority of the band comes up once."""
    span = PRIORITY_MAX - PRIORITY_MIN + 1
    start = int(hashlib.sha256(f"{install}:{project_id}:{mr_iid}".encode()).hexdigest()[:8], 16) % span
    for step in range(span):
        yield PRIORITY_MIN + (start + step) % span


def listener_full_problem(what: str, consequence: str = "") -> str:
    consequence = consequence or (
        "so this app was not started. It starts on the next push or `/review-app deploy` once other review "
        "apps have stopped"
    )
    return (
        f"The load balancer that gives review apps their addresses is full ({what}), {consequence}. If this "
        "keeps happening, ask the platform team to lower MAX_RUNNING_APPS or to use a load balancer with "
        "room (one holds at most 100 target groups)."
    )


def health_problem(health: list[dict[str, Any]], target: str, path: str) -> str:
    """What the load balancer says of the app's target, in words, when its health check fails;
    "" while it is healthy or still being checked for the first time. `health`: DescribeTargetHealth's
    TargetHealthDescriptions (Target Id/Port, TargetHealth State/Reason/Description)."""
    port = target.rpartition(":")[2]
    seen = _health_of(health, target)
    if seen.get("State") != "unhealthy":
        return ""
    reason = seen.get("Reason", "")
    codes = re.findall(r"\d{3}", seen.get("Description", ""))
    checked = f"`{path}` on port {port}"
    words = {
        "Target.ResponseCodeMismatch": f"the app answered {', '.join(codes) or 'another code'} to {checked}, "
        "not 200-399",
        "Target.Timeout": f"the app did not answer {checked} within 5 seconds",
        "Target.FailedHealthChecks": f"the load balancer could not connect to port {port}",
    }
    said = words.get(reason, f"the load balancer's check of {checked} fails ({reason or 'no reason given'})")
    return (
        f"The load balancer's health check fails: {said}. The address answers only once the check passes: "
        "fix the app, or `health_check:` and `port:` in the spec."
    )


def route_taken_problem(what: str, consequence: str = "") -> str:
    consequence = consequence or "so this app was not started"
    return (
        f"This merge request's address could not be given to its app: {what}, {consequence}. Ask the platform "
        "team to remove it or to give this install a domain of its own; this install never takes over what it "
        "did not make."
    )


# ---------------------------------------------------------------------- what a host's route should be


@dataclass(frozen=True)
class RouteWanted:
    """What the load balancer should hold for one MR. Without either, the listener's catch-all
    rule sends the host's visits to the wake function, which answers for sleeping, queued,
    starting and ended apps alike; so an MR costs the load balancer nothing unless its app is up."""

    target_group: bool  # from launch until the app stops: its task's IP is registered there
    rule: bool  # only once the load balancer has found that target healthy


def route_wanted(record: Record | None) -> RouteWanted:
    if record is None or not record.host or record.status not in (Status.DEPLOYING, Status.LIVE):
        return RouteWanted(False, False)
    return RouteWanted(True, record.status == Status.LIVE and bool(record.healthy_at and record.routed_target))


def _health_of(health: list[dict[str, Any]], target: str) -> dict[str, Any]:
    """`ip:port`'s TargetHealth (State, Reason, Description) in DescribeTargetHealth's
    descriptions; {} when it is not registered."""
    ip, _, port = target.rpartition(":")
    for described in health:
        where = described.get("Target", {})
        if (where.get("Id"), str(where.get("Port"))) == (ip, port):
            return dict(described.get("TargetHealth", {}))
    return {}


def target_state(health: list[dict[str, Any]], target: str) -> str:
    """The load balancer's state for `ip:port` ("" when it is not registered): initial,
    healthy, unhealthy, draining, unavailable…"""
    return str(_health_of(health, target).get("State", ""))


def after_health_look(record: Record, health: list[dict[str, Any]], now: int) -> Record:
    """The record once the load balancer's view of its target is known: the first healthy look
    gives the host its own rule (route_wanted); a failing check is explained on the MR."""
    if not record.routed_target:
        return record
    note = health_problem(health, record.routed_target, record.health_check_path or "/")
    healthy = record.healthy_at or (now if target_state(health, record.routed_target) == "healthy" else 0)
    return dataclasses.replace(record, health_note=note, healthy_at=healthy)


# ---------------------------------------------------------------------- the reconciler's sweep


@dataclass(frozen=True)
class Route:
    """What the load balancer holds for one MR of this install: its target group ("" if none)
    and the rules for its host."""

    mr: tuple[int, int]
    target_group_arn: str = ""
    rule_arns: tuple[str, ...] = ()
    # (rule, where it forwards) for rules whose sign-in is not the install's (ReviewAppAccess changed).
    unlike_sign_in: tuple[tuple[str, str], ...] = ()


@dataclass
class RoutePlan:
    remove: list[Route]  # what is there and the record does not want: rules first, then the group
    repair: list[Record]  # apps whose wanted target group or rule is missing: settle them again
    # (rule, forward target): rewrite with the install's sign-in, forwarding where it does now
    resign: list[tuple[str, str]] = dataclasses.field(default_factory=list)


def leftovers(route: Route, record: Record | None) -> Route:
    """The part of `route` that `record` does not want: every rule when the app has none, a
    second rule (two launches raced), the target group when the app is not up."""
    wanted = route_wanted(record)
    keep = record.rule_arn if wanted.rule and record is not None else ""
    return Route(
        route.mr,
        route.target_group_arn if route.target_group_arn and not wanted.target_group else "",
        tuple(arn for arn in route.rule_arns if arn != keep),
    )


def plan_routes(routes: list[Route], records: list[Record], now: int) -> RoutePlan:
    by_mr = {(r.project_id, r.mr_iid): r for r in records}
    plan = RoutePlan([], [])
    found: dict[tuple[int, int], Route] = {}
    for route in routes:
        found[route.mr] = route
        extra = leftovers(route, by_mr.get(route.mr))
        if extra.target_group_arn or extra.rule_arns:
            plan.remove.append(extra)
        plan.resign += [(rule, target) for rule, target in route.unlike_sign_in if rule not in extra.rule_arns]
    for record in records:
        wanted = route_wanted(record)
        there = found.get((record.project_id, record.mr_iid), Route((record.project_id, record.mr_iid)))
        missing = (wanted.target_group and not there.target_group_arn) or (
            wanted.rule and record.rule_arn not in there.rule_arns
        )
        if missing and now - record.launched_at >= ROUTE_GRACE_SECONDS:  # a launch in flight routes itself
            plan.repair.append(record)
    return plan

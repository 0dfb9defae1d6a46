"""Install-wide configuration, read from the environment once per cold start.

A wrong setting is a deploy-time mistake by the platform team, so it fails loudly at
start-up with the variable's name instead of surfacing later as a confusing MR note.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from review_apps import sizes
from review_apps.cost import Prices, PriceTableError, load_prices
from review_apps.durations import DurationError, parse_duration
from review_apps.limits import Limits
from review_apps.ownership import ImageRef, ImageRules, parse_image
from review_apps.spec import SLEEP_AFTER_MIN

# An ALB holds at most 100 target groups, and the quota cannot be raised: one per running app.
ALB_TARGET_GROUPS_MAX = 100
# Running apps an address-mode install allows: one of the ALB's target groups is the wake function's.
AWAKE_APPS_MAX = ALB_TARGET_GROUPS_MAX - 1
_LISTENER_ARN = re.compile(r"arn:aws[\w-]*:elasticloadbalancing:[\w-]+:\d{12}:listener/app/[\w-]+/[0-9a-f]+/[0-9a-f]+")
_DOMAIN = re.compile(r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,61}[a-z0-9]")
_VPC_ID = re.compile(r"vpc-[0-9a-f]{8,17}")
_TARGET_GROUP_ARN = re.compile(r"arn:aws[\w-]*:elasticloadbalancing:[\w-]+:\d{12}:targetgroup/[\w-]+/[0-9a-f]+")

# A CloudFormation stack name: it names this install's families, tags and schedules.
_INSTALL_ID = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,62}$")


class SettingsError(ValueError):
    """A configuration variable is missing or malformed."""


@dataclass(frozen=True)
class Settings:
    gitlab_url: str
    gitlab_token_parameter: str
    webhook_secret_parameter: str
    table_name: str
    cluster: str
    subnets: tuple[str, ...]
    security_groups: tuple[str, ...]
    assign_public_ip: bool
    default_ttl: int
    max_ttl: int
    # Which install this is (the stack name): everything it creates carries it, and it touches
    # nothing without it.
    install_id: str = "review-apps"
    # The deadline's one-time schedules: their group, and the role Scheduler stops tasks with.
    schedule_group: str = ""
    scheduler_role_arn: str = ""
    # Roles a review app may run with, one list per kind; empty allows none of that kind.
    task_role_arns: tuple[str, ...] = ()
    execution_role_arns: tuple[str, ...] = ()
    # Where images may come from besides the project's own tagged ECR repositories (this account
    # and Region): the project's own path on the GitLab registry, and prefixes shared with everyone.
    account_id: str = ""
    region: str = ""
    gitlab_registry_host: str = ""
    shared_image_prefixes: tuple[str, ...] = ()
    # awslogs groups named in compose files are kept under this prefix.
    log_group_prefix: str = "/review-apps/"
    # A project may name as secrets the SSM parameters under <this><project id>/.
    secret_parameter_prefix: str = "/review-apps/"
    # SSM name of a `whsec_…` signing secret; when set, every request must be signed with it.
    webhook_signing_secret_parameter: str = ""
    # A fork's code would run with the review apps' roles and network: off unless an admin opts in.
    allow_forks: bool = False
    # Project IDs or paths that may have review apps; empty means every project the token sees.
    project_allowlist: tuple[str, ...] = ()
    # The largest task a spec may ask for (CPU units, MiB), and the prices cost figures use.
    max_cpu: int = 2048
    max_memory: int = 8192
    prices: Prices = field(default_factory=Prices)
    # The most review apps running at once, across the install and per project; 0 = no cap.
    # Past a cap, new apps wait in a queue (review_apps.queue).
    max_running: int = 0
    max_running_per_project: int = 0
    # Address mode: each MR gets https://<host>.<review_domain> through this ALB listener.
    # Empty listener = IP mode (the task's own address).
    alb_listener_arn: str = ""
    review_domain: str = ""
    vpc_id: str = ""

    # Sleep and wake (address mode): the wake function's target group, and how long an app may go
    # without a visit before it sleeps when its spec doesn't say (0 = never).
    wake_target_group_arn: str = ""
    default_sleep_after: int = 0

    # Who may open a review app (address mode): "members" signs visitors in through the install's
    # own OpenID Connect provider (OIDC_ISSUER), federated to GitLab, and lets in members of the
    # MR's project at REVIEW_APP_MIN_ACCESS_LEVEL or above; "public" lets anyone in.
    review_app_access: str = "members"
    oidc_issuer: str = ""
    oidc_client_secret_arn: str = ""
    gitlab_oauth_parameter: str = "/review-apps/gitlab-oauth"
    # Sign-in's own table, and an optional read_api token for membership look-ups ("" = the bot's).
    signin_table_name: str = ""
    oidc_signing_key_arn: str = ""  # the KMS key (RSA_2048, SIGN_VERIFY) that signs ID tokens
    gitlab_read_token_parameter: str = ""
    min_access_level: int = 20
    alb_session_seconds: int = 3600

    @property
    def address_mode(self) -> bool:
        return bool(self.alb_listener_arn)

    @property
    def sleep_enabled(self) -> bool:
        """Apps may sleep: they have an address to be woken through. (WakeFunction itself has no
        WAKE_TARGET_GROUP_ARN: its target group is made after it, and it puts nothing to sleep.)"""
        return self.address_mode

    @property
    def sign_in(self) -> bool:
        """Every review host's rule signs the visitor in before it forwards."""
        return self.address_mode and self.review_app_access == "members"

    @property
    def load_balancer_dimension(self) -> str:
        """`app/<name>/<id>`, as CloudWatch names the listener's load balancer."""
        return "/".join(self.alb_listener_arn.split(":listener/", 1)[-1].split("/")[:3])

    @property
    def cluster_name(self) -> str:
        return self.cluster.rsplit("/", 1)[-1]

    @property
    def limits(self) -> Limits:
        return Limits(
            task_role_arns=self.task_role_arns,
            execution_role_arns=self.execution_role_arns,
            max_cpu=self.max_cpu,
            max_memory=self.max_memory,
            log_group_prefix=self.log_group_prefix,
        )

    @property
    def image_rules(self) -> ImageRules:
        return ImageRules(self.account_id, self.region, self.gitlab_registry_host, self.shared_image_prefixes)


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise SettingsError(f"{name} is not set")
    return value


def _csv(env: Mapping[str, str], name: str, required: bool = True) -> tuple[str, ...]:
    raw = env.get(name, "")
    items = tuple(part.strip() for part in raw.split(",") if part.strip())
    if required and not items:
        raise SettingsError(f"{name} must list at least one value, comma-separated")
    return items


def _duration(env: Mapping[str, str], name: str, default: str) -> int:
    raw = env.get(name, "").strip() or default
    try:
        return parse_duration(raw)
    except DurationError as exc:
        raise SettingsError(f"{name}={raw!r}: {exc}") from None


def _flag(env: Mapping[str, str], name: str) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw in ("", "false", "no", "0"):
        return False
    if raw in ("true", "yes", "1"):
        return True
    raise SettingsError(f"{name} must be true or false, got {raw!r}")


def _size(env: Mapping[str, str], name: str, default: int, parse: Callable[[Any], int | None]) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    value = parse(raw)
    if not value or value <= 0:
        raise SettingsError(f"{name}={raw!r} is not a size such as 2048 or 8GB")
    return value


def _count(env: Mapping[str, str], name: str) -> int:
    raw = env.get(name, "").strip() or "0"
    if not raw.isdigit():
        raise SettingsError(f"{name} must be a whole number (0 for no cap), got {raw!r}")
    return int(raw)


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    gitlab_url = _required(env, "GITLAB_URL").rstrip("/")
    if not gitlab_url.startswith(("http://", "https://")):
        raise SettingsError(f"GITLAB_URL must start with http:// or https://, got {gitlab_url!r}")
    public_ip = env.get("ASSIGN_PUBLIC_IP", "DISABLED").strip().upper()
    if public_ip not in ("ENABLED", "DISABLED"):
        raise SettingsError(f"ASSIGN_PUBLIC_IP must be ENABLED or DISABLED, got {public_ip!r}")
    default_ttl = _duration(env, "DEFAULT_TTL", "30m")
    max_ttl = _duration(env, "MAX_TTL", "4h")
    if default_ttl > max_ttl:
        raise SettingsError(f"DEFAULT_TTL ({default_ttl}s) is longer than MAX_TTL ({max_ttl}s)")
    install_id = _required(env, "INSTALL_ID")
    if not _INSTALL_ID.match(install_id):
        raise SettingsError(f"INSTALL_ID must be a stack name (a letter, then letters, digits, -), got {install_id!r}")
    secret_prefix = env.get("SECRET_PARAMETER_PREFIX", "").strip() or "/review-apps/"
    if not (secret_prefix.startswith("/") and secret_prefix.endswith("/")):
        raise SettingsError(f"SECRET_PARAMETER_PREFIX must start and end with /, got {secret_prefix!r}")
    log_prefix = env.get("LOG_GROUP_PREFIX", "").strip() or "/review-apps/"
    if not log_prefix.startswith("/") or not log_prefix.endswith("/"):
        raise SettingsError(f"LOG_GROUP_PREFIX must start and end with /, got {log_prefix!r}")
    max_running = _count(env, "MAX_RUNNING_APPS")
    listener, domain, vpc = _addresses(env, max_running)
    wake_group = env.get("WAKE_TARGET_GROUP_ARN", "").strip() if listener else ""
    if wake_group and not _TARGET_GROUP_ARN.fullmatch(wake_group):
        raise SettingsError(f"WAKE_TARGET_GROUP_ARN must be a target group's ARN, got {wake_group!r}")
    sleep_raw = env.get("DEFAULT_SLEEP_AFTER", "").strip() or "0"
    default_sleep = 0 if sleep_raw == "0" else _duration(env, "DEFAULT_SLEEP_AFTER", "0")
    if 0 < default_sleep < SLEEP_AFTER_MIN:
        raise SettingsError(f"DEFAULT_SLEEP_AFTER must be 0 (never) or at least 5m, got {sleep_raw!r}")
    return Settings(
        gitlab_url=gitlab_url,
        gitlab_token_parameter=_required(env, "GITLAB_TOKEN_PARAMETER"),
        webhook_secret_parameter=_required(env, "WEBHOOK_SECRET_PARAMETER"),
        table_name=_required(env, "TABLE_NAME"),
        cluster=_required(env, "CLUSTER"),
        subnets=_csv(env, "SUBNETS"),
        security_groups=_csv(env, "SECURITY_GROUPS"),
        assign_public_ip=public_ip == "ENABLED",
        default_ttl=default_ttl,
        max_ttl=max_ttl,
        install_id=install_id,
        schedule_group=_required(env, "SCHEDULE_GROUP"),
        scheduler_role_arn=_required(env, "SCHEDULER_ROLE_ARN"),
        task_role_arns=_csv(env, "TASK_ROLE_ARNS", required=False),
        execution_role_arns=_csv(env, "EXECUTION_ROLE_ARNS", required=False),
        **_images(env),
        log_group_prefix=log_prefix,
        secret_parameter_prefix=secret_prefix,
        webhook_signing_secret_parameter=env.get("WEBHOOK_SIGNING_SECRET_PARAMETER", "").strip(),
        allow_forks=_flag(env, "ALLOW_FORKS"),
        project_allowlist=_csv(env, "PROJECT_ALLOWLIST", required=False),
        max_cpu=_size(env, "MAX_CPU", 2048, sizes.cpu_units),
        max_memory=_size(env, "MAX_MEMORY", 8192, sizes.memory_mib),
        prices=_prices(env),
        max_running=max_running,
        max_running_per_project=_count(env, "MAX_RUNNING_APPS_PER_PROJECT"),
        alb_listener_arn=listener,
        review_domain=domain,
        vpc_id=vpc,
        wake_target_group_arn=wake_group,
        default_sleep_after=default_sleep,
        **_sign_in(env, bool(listener)),
    )


ACCESS_LEVELS = (10, 15, 20, 30, 40, 50)  # GitLab's Guest … Owner
ALB_SESSION_MAX = 12 * 3600  # the longest a removed member keeps a load balancer session


def _sign_in(env: Mapping[str, str], address_mode: bool) -> dict[str, Any]:
    access = env.get("REVIEW_APP_ACCESS", "").strip().lower() or "members"
    if access not in ("members", "public"):
        raise SettingsError(f"REVIEW_APP_ACCESS must be members or public, got {access!r}")
    level_raw = env.get("REVIEW_APP_MIN_ACCESS_LEVEL", "").strip() or "20"
    if not level_raw.isdigit() or int(level_raw) not in ACCESS_LEVELS:
        raise SettingsError(
            f"REVIEW_APP_MIN_ACCESS_LEVEL must be a GitLab access level (10, 15, 20, 30, 40, 50), got {level_raw!r}"
        )
    session_raw = env.get("REVIEW_APP_SESSION_SECONDS", "").strip() or "3600"
    if not session_raw.isdigit() or not 60 <= int(session_raw) <= ALB_SESSION_MAX:
        raise SettingsError(f"REVIEW_APP_SESSION_SECONDS must be 60 to {ALB_SESSION_MAX}, got {session_raw!r}")
    values: dict[str, Any] = {
        "review_app_access": access,
        "min_access_level": int(level_raw),
        "alb_session_seconds": int(session_raw),
        "gitlab_oauth_parameter": env.get("GITLAB_OAUTH_PARAMETER", "").strip() or "/review-apps/gitlab-oauth",
        "oidc_issuer": env.get("OIDC_ISSUER", "").strip().rstrip("/"),
        "oidc_client_secret_arn": env.get("OIDC_CLIENT_SECRET_ARN", "").strip(),
        "signin_table_name": env.get("SIGNIN_TABLE_NAME", "").strip(),
        "oidc_signing_key_arn": env.get("OIDC_SIGNING_KEY_ARN", "").strip(),
        "gitlab_read_token_parameter": env.get("GITLAB_READ_TOKEN_PARAMETER", "").strip(),
    }
    if address_mode and access == "members":
        if not values["oidc_client_secret_arn"]:
            raise SettingsError("OIDC_CLIENT_SECRET_ARN is not set: signing visitors in needs the ALB's client secret")
        if not values["signin_table_name"]:
            raise SettingsError("SIGNIN_TABLE_NAME is not set: sign-in keeps its state in a table of its own")
        if not values["oidc_signing_key_arn"]:
            raise SettingsError("OIDC_SIGNING_KEY_ARN is not set: ID tokens are signed by the install's KMS key")
        issuer = values["oidc_issuer"]
        if issuer and not re.fullmatch(r"https://[a-z0-9.-]+(:\d+)?/auth", issuer):
            raise SettingsError(f"OIDC_ISSUER must be https://<api host>/auth, got {issuer!r}")
    return values


def _addresses(env: Mapping[str, str], max_running: int) -> tuple[str, str, str]:
    """(listener, domain, VPC) for address mode, all empty for IP mode. The install refuses a cap
    the load balancer can't hold, rather than answering MRs with a full listener later."""
    listener = env.get("ALB_LISTENER_ARN", "").strip()
    if not listener:
        return "", "", ""
    if not _LISTENER_ARN.fullmatch(listener):
        raise SettingsError(f"ALB_LISTENER_ARN must be an Application Load Balancer listener's ARN, got {listener!r}")
    domain = _required(env, "REVIEW_DOMAIN").lower().rstrip(".")
    if not _DOMAIN.fullmatch(domain) or len(domain) > 253 - 64:
        raise SettingsError(
            f"REVIEW_DOMAIN must be a DNS name such as review.example.com (at most 189 characters), got {domain!r}"
        )
    vpc = _required(env, "VPC_ID")
    if not _VPC_ID.fullmatch(vpc):
        raise SettingsError(f"VPC_ID must be a VPC id such as vpc-0123abcd, got {vpc!r}")
    if not 1 <= max_running <= AWAKE_APPS_MAX:
        raise SettingsError(
            f"MAX_RUNNING_APPS is {max_running or 'unset (no cap)'}, but with an ALB (ALB_LISTENER_ARN) every "
            f"running app needs a target group, an ALB holds at most {ALB_TARGET_GROUPS_MAX} and the wake "
            f"function has one: set it between 1 and {AWAKE_APPS_MAX} (fewer if the ALB serves other target "
            "groups). Sleeping and queued apps hold none, so open merge requests are not limited by it."
        )
    return listener, domain, vpc


_ACCOUNT = re.compile(r"\d{12}")
_REGION = re.compile(r"[a-z]{2}(?:-[a-z]+)+-\d")


def _images(env: Mapping[str, str]) -> dict[str, Any]:
    account = env.get("ACCOUNT_ID", "").strip()
    if account and not _ACCOUNT.fullmatch(account):
        raise SettingsError(f"ACCOUNT_ID must be a 12-digit AWS account id, got {account!r}")
    region = (env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "").strip()
    if region and not _REGION.fullmatch(region):
        raise SettingsError(f"AWS_REGION must be a Region such as eu-west-1, got {region!r}")
    registry = env.get("GITLAB_REGISTRY_HOST", "").strip().lower().rstrip("/")
    if registry and parse_image(f"{registry}/x/y") != ImageRef(registry, "x/y"):
        raise SettingsError(
            f"GITLAB_REGISTRY_HOST must be a registry host such as registry.gitlab.com, got {registry!r}"
        )
    shared = _csv(env, "SHARED_IMAGE_PREFIXES", required=False)
    for prefix in shared:
        if parse_image(prefix) is None or ":" in prefix.rsplit("/", 1)[-1] or "@" in prefix:
            raise SettingsError(
                f"SHARED_IMAGE_PREFIXES: {prefix!r} is not a registry/repository prefix such as "
                "public.ecr.aws/docker/library/postgres (no tag)"
            )
    return {"account_id": account, "region": region, "gitlab_registry_host": registry, "shared_image_prefixes": shared}


def _prices(env: Mapping[str, str]) -> Prices:
    try:
        return load_prices(env.get("PRICES", ""))
    except PriceTableError as exc:
        raise SettingsError(str(exc)) from None

"""What the app is told, the spec's `env:` and `secrets:`, and what a project may name as a secret:
pure rules, each refusal, and hostile input (Hypothesis)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from review_apps import app_env, ownership, taskdef
from review_apps.limits import Limits
from review_apps.model.record import MergeRequestRef
from review_apps.ownership import ImageRules
from review_apps.problems import Problems
from review_apps.spec import parse_spec
from tests.unit.factories import SHA, spec

MR = MergeRequestRef(14, 42, 14, "feature/Login", "acme/shop")
RULES = ImageRules(account="111122223333", region="eu-west-1")
OWN = "/review-apps/14/"


def test_what_the_app_is_told_in_each_mode():
    ip = app_env.variables(MR, SHA)
    assert ip["REVIEW_APP"] == "true" and ip["CI_ENVIRONMENT_NAME"] == "review/feature-login"
    assert ip["CI_COMMIT_SHORT_SHA"] == SHA[:8] and ip["CI_PROJECT_PATH"] == "acme/shop"
    assert not set(app_env.ADDRESS_VARIABLES) & set(ip)
    address = app_env.variables(MR, SHA, "shop-mr42-p14.review.example.com")
    assert address["REVIEW_APP_URL"] == address["CI_ENVIRONMENT_URL"] == "https://shop-mr42-p14.review.example.com"
    assert set(address) == app_env.INSTALL_VARIABLES


def test_placeholders_missing_in_ip_mode_are_named():
    values = app_env.placeholder_values(MR, SHA)
    assert app_env.unfilled("${REVIEW_APP_URL}/x ${CI_COMMIT_SHA}", values) == ["REVIEW_APP_URL"]
    assert app_env.fill("${CI_PROJECT_PATH_SLUG}-${CI_MERGE_REQUEST_IID}", values) == "acme-shop-42"


def parse(text: str):
    return parse_spec("task_definition: web\n" + text, 1800, 14400)


def test_env_and_secrets_parse():
    parsed = parse(f"env:\n  A: b\n  URL: ${{REVIEW_APP_URL}}\nsecrets:\n  DB: {OWN}db\n")
    assert parsed.env == (("A", "b"), ("URL", "${REVIEW_APP_URL}")) and parsed.secrets == (("DB", f"{OWN}db"),)


def test_every_refusal_of_env_and_secrets():
    many = "".join(f"  V{i}: x\n" for i in range(51))
    cases = {
        "env: [a]\n": "`env:` must be a mapping",
        "env:\n" + many: "at most 50 are allowed",
        "env:\n  9A: x\n": "`env:` `9A` is not a variable name",
        f"env:\n  {'A' * 129}: x\n": "is not a variable name",
        "env:\n  CI_COMMIT_SHA: x\n": "`env.CI_COMMIT_SHA` is set by review apps themselves",
        "env:\n  N: 3\n": "`env.N:` `3` must be a string",
        f"env:\n  LONG: {'x' * 4097}\n": "at most 4096 are allowed",
        "env:\n  J: ${CI_JOB_TOKEN}\n": "`env.J` uses `${CI_JOB_TOKEN}`, which is not available",
        "env:\n  A: x\nsecrets:\n  A: /review-apps/14/a\n": "`secrets.A` is also in `env:`",
        "secrets:\n  S: has space\n": "must be an SSM parameter name or ARN",
        "secrets:\n  S: [x]\n": "must be an SSM parameter name or ARN",
        "secrets:\n  REVIEW_APP: /review-apps/14/x\n": "`secrets.REVIEW_APP` is set by review apps themselves",
    }
    for text, fragment in cases.items():
        result = parse(text)
        assert isinstance(result, Problems), text
        assert any(fragment in p for p in result.problems), (text, result.problems)


def refused(reference: str, tags: dict | None = None) -> bool:
    return ownership.secret_problem("V", reference, 14, "acme/shop", "/review-apps/", RULES, tags or {}) is not None


def test_what_a_project_may_name_as_a_secret():
    arn = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:shop/db-AbCdEf"
    assert not refused(f"{OWN}db") and not refused(f"{OWN}nested/db")
    assert not refused(f"arn:aws:ssm:eu-west-1:111122223333:parameter{OWN}db")
    assert not refused(arn, {arn: "acme/"}) and not refused(f"{arn}:password::", {arn: "acme/shop"})
    for reference in (
        "/review-apps/15/db",  # another project's
        "/review-apps/140/db",  # a prefix of another id is not this one
        "/review-apps/14",  # the folder itself
        f"{OWN}../15/db",
        f"{OWN}./db",
        f"{OWN}a//b",
        "/prod/db",
        "db-password",  # a bare name is nobody's
        "arn:aws:ssm:eu-west-1:999999999999:parameter/review-apps/14/db",  # another account
        "arn:aws:ssm:us-east-1:111122223333:parameter/review-apps/14/db",  # another Region
        arn,  # untagged
        "arn:aws:secretsmanager:eu-west-1:999999999999:secret:shop/db-AbCdEf",
        "arn:aws:s3:::bucket/key",
    ):
        assert refused(reference, {arn: "other/"}), reference
    assert ownership.secrets_to_read([arn + ":k::", f"{OWN}x", arn], RULES) == (arn,)


def test_the_refusal_names_the_variable_and_where_to_put_it():
    problem = ownership.secret_problem("DB_PASSWORD", "/prod/db", 14, "acme/shop", "/review-apps/", RULES, {})
    assert problem and "Secret `DB_PASSWORD` names `/prod/db`" in problem and "`/review-apps/14/`" in problem


@given(st.dictionaries(st.text(max_size=40), st.text(max_size=60) | st.integers() | st.none(), max_size=8))
def test_any_env_or_secrets_mapping_is_bounded_and_safe(data):
    problems: list[str] = []
    env = app_env.parse_env(data, problems)
    found = app_env.parse_secrets(data, set(), problems)
    for name, _ in (*env, *found):
        assert name.isidentifier() and name not in app_env.INSTALL_VARIABLES and len(name) <= 128
    assert all(isinstance(value, str) and " " not in value for _, value in found)
    assert all(len(p) < 1000 for p in problems)  # what is echoed goes through code(), bounded


@given(st.text(max_size=200))
def test_any_reference_is_refused_unless_it_is_the_projects(reference):
    if refused(reference):
        return
    source = ownership.secret_source(reference, RULES)
    assert source is not None and source.kind == "ssm" and source.name.startswith(OWN)


def test_the_install_wins_and_settings_reach_the_right_containers():
    base = {
        "family": "shop",
        "networkMode": "awsvpc",
        "requiresCompatibilities": ["FARGATE"],
        "cpu": "256",
        "memory": "512",
        "executionRoleArn": "arn:aws:iam::111122223333:role/exec",
        "containerDefinitions": [
            {
                "name": "web",
                "image": "nginx",
                "command": ["run"],
                "entryPoint": ["sh"],
                "portMappings": [{"containerPort": 80}],
                "environment": [{"name": "CI_COMMIT_SHA", "value": "stale"}, {"name": "A", "value": "base"}],
                "secrets": [{"name": "A", "valueFrom": "/x"}],
            },
            {"name": "sidecar", "image": "nginx", "essential": False},
        ],
    }
    the_spec = spec(env=(("A", "spec"), ("B", "${CI_MERGE_REQUEST_IID}")), secrets=(("S", f"{OWN}s"),))
    told = app_env.variables(MR, SHA)
    derived = taskdef.derive(
        base,
        the_spec,
        project_id=14,
        mr_iid=42,
        placeholders=app_env.placeholder_values(MR, SHA),
        limits=Limits(execution_role_arns=("arn:aws:iam::111122223333:role/exec",)),
        install="t",
        told=told,
    )
    assert not isinstance(derived, Problems), derived
    web, sidecar = derived.register_kwargs["containerDefinitions"]
    web_env = {e["name"]: e["value"] for e in web["environment"]}
    assert web_env["CI_COMMIT_SHA"] == SHA and web_env["A"] == "spec" and web_env["B"] == "42"
    assert web["secrets"] == [{"name": "S", "valueFrom": f"{OWN}s"}]  # the spec's A replaced the base's secret A
    sidecar_env = {e["name"]: e["value"] for e in sidecar["environment"]}
    assert sidecar_env == told and "secrets" not in sidecar  # a task definition app: settings to its container only

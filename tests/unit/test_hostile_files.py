"""Whatever a project's files hold, the three parsers answer with problems (or a result) in
bounded time, and never raise: generated documents with wrong types, deep nesting, aliases and
huge strings, shaped after the keys each parser really reads."""

from __future__ import annotations

import time

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from review_apps import compose
from review_apps.limits import Limits
from review_apps.problems import Problems
from review_apps.spec import Spec, parse_spec
from review_apps.untrusted import ECHO_LIMIT, UnreadableFile, code, load_yaml, plain

SPEC_KEYS = [
    "task_definition",
    "compose",
    "ecs_params",
    "container",
    "port",
    "image",
    "command",
    "ttl",
    "trigger",
    "cpu",
    "memory",
    "capacity",
    "architecture",
    "label",
    "drafts",
    "wrap_in_timeout",
]
SERVICE_KEYS = [
    "image",
    "command",
    "entrypoint",
    "environment",
    "ports",
    "mem_limit",
    "mem_reservation",
    "cpu_shares",
    "working_dir",
    "user",
    "healthcheck",
    "depends_on",
    "logging",
    "volumes",
    "labels",
    "deploy",
    "build",
    "privileged",
    "restart",
    "x-extra",
    "stdin_open",
    "tty",
]
PARAM_KEYS = [
    "version",
    "task_definition",
    "run_params",
    "ecs_network_mode",
    "task_role_arn",
    "task_execution_role",
    "task_size",
    "cpu_limit",
    "mem_limit",
    "services",
    "essential",
]
PLACES = {"spec": SPEC_KEYS, "compose": SERVICE_KEYS + ["services", "volumes", "web"], "params": PARAM_KEYS}
LIMITS = Limits(task_role_arns=("arn:aws:iam::1:role/t",), execution_role_arns=("arn:aws:iam::1:role/e",))
PER_DOCUMENT_SECONDS = 1.0

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=30),
    st.sampled_from(
        [
            "@all",
            "`x`",
            "[a](https://evil.example)",
            "${CI_COMMIT_SHA}",
            "${HOME}",
            "1h",
            "512m",
            "0.5 vCPU",
            "awslogs",
            "CMD",
            "/x",
            "./y:/z",
            "80:8080/tcp",
            "'unclosed",
        ]
    ),
    st.text(min_size=2000, max_size=20000),  # huge strings
)


def values(keys: list[str]):
    return st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4),
            st.dictionaries(st.one_of(st.sampled_from(keys), st.text(max_size=8), st.integers()), inner, max_size=5),
        ),
        max_leaves=30,
    )


def document(place: str):
    keys = PLACES[place]
    tree = st.dictionaries(st.sampled_from(keys), values(keys), max_size=8)
    if place == "compose":
        tree = st.builds(
            lambda services, rest: {"services": services, **rest},
            st.dictionaries(
                st.one_of(st.sampled_from(["web", "db", "x-y"]), st.text(max_size=6)),
                st.one_of(st.dictionaries(st.sampled_from(SERVICE_KEYS), values(keys), max_size=6), scalars),
                max_size=3,
            ),
            st.dictionaries(st.sampled_from(["volumes", "x-logging"]), values(keys), max_size=2),
        )
    dumped = tree.map(lambda data: yaml.safe_dump(data, allow_unicode=True))
    hostile = st.sampled_from(
        [
            "a: &a [x, x, x, x, x, x, x, x]\n"
            + "".join(
                f"{n}: &{n} [" + ",".join([f"*{p}"] * 8) + "]\n" for p, n in zip("abcdefg", "bcdefgh", strict=True)
            ),
            "[" * 3000 + "]" * 3000,
            "a: &a [*a]\n",
            "{" * 60 + "}" * 60,
            "services:\n  web: &w\n    image: x\n    labels: *w\n",
            "x: !!python/object/apply:os.system ['echo hi']\n",
            "services:\n  web:\n    image: app\n"
            + "    environment:\n"
            + "".join(f"      V{i}: {i}\n" for i in range(4000)),
            "\t: -\n",
            "",
            "- just\n- a list\n",
        ]
    )
    return st.one_of(dumped, dumped, dumped, hostile, st.text(max_size=200))


def timed(parse, text: str):
    started = time.perf_counter()
    result = parse(text)
    assert time.perf_counter() - started < PER_DOCUMENT_SECONDS
    return result


HYPOTHESIS = settings(
    max_examples=int(__import__("os").environ.get("HOSTILE_EXAMPLES", "400")),
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _problems_are_bounded(problems: tuple[str, ...]) -> None:
    for problem in problems:
        assert isinstance(problem, str) and problem
        assert len(problem) < 2000


@HYPOTHESIS
@given(document("spec"))
def test_the_spec_parser_answers_any_document_with_problems(text):
    result = timed(lambda t: parse_spec(t, 1800, 14400, 2048, 8192), text)
    assert isinstance(result, (Spec, Problems))
    if isinstance(result, Problems):
        _problems_are_bounded(result.problems)


def _translate(compose_text: str, params_text: str | None):
    return compose.translate(
        compose_text,
        params_text,
        compose_path="docker-compose.yml",
        params_path="ecs-params.yml" if params_text is not None else None,
        placeholders={"CI_COMMIT_SHA": "a" * 40},
        limits=LIMITS,
        family="compose",
    )


@HYPOTHESIS
@given(document("compose"))
def test_the_compose_parser_answers_any_document_with_problems(text):
    result = timed(lambda t: _translate(t, None), text)
    assert isinstance(result, (compose.Translation, Problems))
    if isinstance(result, Problems):
        _problems_are_bounded(result.problems + result.notices)


@HYPOTHESIS
@given(document("params"))
def test_the_ecs_params_parser_answers_any_document_with_problems(text):
    result = timed(lambda t: _translate("services:\n  web:\n    image: app\n    ports: ['80']\n", t), text)
    assert isinstance(result, (compose.Translation, Problems))
    if isinstance(result, Problems):
        _problems_are_bounded(result.problems + result.notices)


# --------------------------------------------------------------------------- the bounds themselves


def test_a_file_over_64_kib_is_refused_before_parsing():
    try:
        load_yaml("a: " + "x" * (64 * 1024), "big.yml")
    except UnreadableFile as exc:
        assert "larger than 64 KiB" in str(exc)
    else:
        raise AssertionError("not refused")


def test_anchors_used_reasonably_still_load():
    text = (
        "x-common: &common\n  image: app\n  user: '1000'\nservices:\n  web:\n    <<: *common\n  worker:\n"
        "    <<: *common\n"
    )
    assert load_yaml(text, "c.yml")["services"]["worker"] == {"image": "app", "user": "1000"}


@given(st.one_of(st.text(), scalars, st.lists(st.integers()), st.dictionaries(st.text(), st.integers())))
def test_echoes_are_one_inert_line_of_inline_code(value):
    shown = code(value)
    inner = shown[1:-1] if shown.startswith("`") else shown
    assert "`" not in inner and "\n" not in inner and len(inner) <= ECHO_LIMIT
    assert plain(value) == inner or shown == "(empty)"

"""The spec file and the task definition derived from it."""

from __future__ import annotations

import pytest

from review_apps import taskdef
from review_apps.app_env import fill as fill_placeholders
from review_apps.app_env import ref_slug
from review_apps.durations import DurationError, format_duration, parse_duration
from review_apps.limits import Limits
from review_apps.problems import Problems
from review_apps.spec import Spec, parse_spec
from tests.unit.factories import SHA, placeholder_values, spec

DEFAULT, MAXIMUM = 1800, 4 * 3600


def parse(text: str):
    return parse_spec(text, DEFAULT, MAXIMUM)


def problems(text: str) -> str:
    result = parse(text)
    assert isinstance(result, Problems), result
    return "\n".join(result.problems)


# --------------------------------------------------------------------------- spec


def test_minimal_spec_gets_the_defaults():
    assert parse("task_definition: shop-web\n") == Spec(
        task_definition="shop-web",
        container=None,
        port=None,
        image=None,
        command=None,
        ttl_seconds=DEFAULT,
        ttl_capped_from=0,
        trigger="pipeline",
    )


def test_full_spec():
    result = parse(
        "task_definition: shop-web:7\ncontainer: web\nport: 8080\nimage: reg/shop:${CI_COMMIT_SHA}\n"
        "command: gunicorn -b 0.0.0.0:8080 shop.wsgi\nttl: 1h30m\ntrigger: merge_request\n"
    )
    assert result == Spec(
        "shop-web:7",
        "web",
        8080,
        "reg/shop:${CI_COMMIT_SHA}",
        ("gunicorn", "-b", "0.0.0.0:8080", "shop.wsgi"),
        5400,
        0,
        "merge_request",
    )


def test_ttl_above_the_maximum_is_capped_and_remembered():
    result = parse("task_definition: a\nttl: 8h\n")
    assert result.ttl_seconds == MAXIMUM and result.ttl_capped_from == 8 * 3600


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("task_definition: [\n", "not valid YAML at line"),
        ("- just\n- a list\n", "must be a YAML mapping"),
        ("container: web\n", "`task_definition` is required"),
        ("task_definition: 'has spaces'\n", "is not a task definition family"),
        ("task_definition: a\nport: 70000\n", "from 1 to 65535"),
        ("task_definition: a\nport: true\n", "from 1 to 65535"),
        ("task_definition: a\nttl: soon\n", "write it like 45m"),
        ("task_definition: a\nttl: 10s\n", "too short"),
        ("task_definition: a\ntrigger: push\n", "`trigger:` `push` is not supported"),
        ("task_definition: a\nimage: r/x:${CI_JOB_ID}\n", "`${CI_JOB_ID}`, which is not available"),
        ("task_definition: a\ncommand: {a: 1}\n", "`command` must be a string or a list"),
        ("task_definition: a\nttls: 1h\n", "Unknown key `ttls`"),
        ("task_definition: a\ncontainer: ''\n", "`container` must be the name"),
    ],
)
def test_each_problem_says_what_is_wrong_and_how_to_fix_it(text, expected):
    assert expected in problems(text)


def test_all_problems_are_reported_at_once():
    result = parse("port: 0\nttl: x\ntrigger: y\n")
    assert len(result.problems) == 4


def test_placeholders_use_gitlab_ci_values():
    values = placeholder_values(SHA, "Feature/Big_Change!", 7, "Group/Sub.Project")
    assert values == {
        "CI_COMMIT_SHA": SHA,
        "CI_COMMIT_SHORT_SHA": SHA[:8],
        "CI_COMMIT_REF_NAME": "Feature/Big_Change!",
        "CI_COMMIT_REF_SLUG": "feature-big-change",
        "CI_ENVIRONMENT_NAME": "review/feature-big-change",
        "CI_MERGE_REQUEST_IID": "7",
        "CI_PROJECT_ID": "14",
        "CI_PROJECT_PATH": "Group/Sub.Project",
        "CI_PROJECT_PATH_SLUG": "group-sub-project",
    }
    assert (
        fill_placeholders("r/${CI_PROJECT_PATH_SLUG}:${CI_COMMIT_SHORT_SHA}", values) == "r/group-sub-project:aaaaaaaa"
    )


def test_ref_slug_is_at_most_63_characters_and_trimmed():
    assert ref_slug("-" + "x" * 70) == "x" * 62
    assert ref_slug("a" * 62 + "/b") == "a" * 62


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("30m", 1800), ("2h", 7200), ("1h30m", 5400), ("1d", 86400), ("600", 600), (45, 45)],
)
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "1x", "m30", "0", "-5m", True])
def test_bad_durations(text):
    with pytest.raises(DurationError):
        parse_duration(text)


def test_format_duration():
    assert [format_duration(s) for s in (45, 1800, 5400, 7200, 3605)] == ["45s", "30m", "1h30m", "2h", "1h5s"]


# --------------------------------------------------------------------------- task definition


def base_td(**changes):
    td = {
        "taskDefinitionArn": "arn:aws:ecs:us-east-1:111122223333:task-definition/shop-web:3",
        "family": "shop-web",
        "revision": 3,
        "status": "ACTIVE",
        "networkMode": "awsvpc",
        "requiresCompatibilities": ["FARGATE"],
        "compatibilities": ["EC2", "FARGATE"],
        "cpu": "256",
        "memory": "512",
        "executionRoleArn": "arn:aws:iam::111122223333:role/exec",
        "registeredAt": "2026-01-01T00:00:00Z",
        "containerDefinitions": [
            {
                "name": "web",
                "image": "reg/shop:latest",
                "entryPoint": ["/docker-entrypoint.sh"],
                "command": ["gunicorn", "shop.wsgi"],
                "portMappings": [{"containerPort": 8000}],
                "essential": True,
            }
        ],
    }
    td.update(changes)
    return td


EXEC_ROLE = "arn:aws:iam::111122223333:role/exec"


def derive(td=None, the_spec=None, limits=None):
    return taskdef.derive(
        td or base_td(),
        the_spec or spec(),
        project_id=14,
        mr_iid=3,
        placeholders=placeholder_values(SHA, "feature/x", 3, "g/p"),
        limits=limits or Limits(execution_role_arns=(EXEC_ROLE,)),
        install="review-apps-test",
    )


def test_derived_task_definition_wraps_the_command_in_timeout():
    derived = derive(the_spec=spec(image="reg/shop:${CI_COMMIT_SHA}", ttl_seconds=2700))
    kwargs = derived.register_kwargs
    web = kwargs["containerDefinitions"][0]
    assert web["entryPoint"] == ["timeout", "-k", "30", "2700"]
    assert web["command"] == ["/docker-entrypoint.sh", "gunicorn", "shop.wsgi"]
    assert web["image"] == f"reg/shop:{SHA}"
    assert kwargs["family"] == "review-app_review-apps-test_14-3"
    assert kwargs["requiresCompatibilities"] == ["FARGATE"]
    assert kwargs["executionRoleArn"] == "arn:aws:iam::111122223333:role/exec"
    for read_only in ("taskDefinitionArn", "revision", "status", "compatibilities", "registeredAt"):
        assert read_only not in kwargs
    assert derived.container == "web" and derived.port == 8000


def test_spec_command_replaces_the_task_definition_command():
    derived = derive(the_spec=spec(command=("npm", "start"), port=3000))
    web = derived.register_kwargs["containerDefinitions"][0]
    assert web["command"] == ["/docker-entrypoint.sh", "npm", "start"] and derived.port == 3000


def test_the_base_task_definition_is_not_modified():
    td = base_td()
    derive(td)
    assert td["containerDefinitions"][0]["entryPoint"] == ["/docker-entrypoint.sh"]


def test_no_command_anywhere_is_a_problem_not_a_guess():
    td = base_td()
    del td["containerDefinitions"][0]["entryPoint"]
    del td["containerDefinitions"][0]["command"]
    result = derive(td, spec(wrap_in_timeout=True))
    assert isinstance(result, Problems)
    assert "Add `command:` to the spec" in result.problems[0]
    unwrapped = derive(td)  # not asked to wrap: the image runs as it is, the schedule ends it
    assert isinstance(unwrapped, taskdef.DerivedTaskDefinition) and not unwrapped.wrapped
    assert "entryPoint" not in unwrapped.register_kwargs["containerDefinitions"][0]


def test_several_containers_need_a_name():
    td = base_td()
    td["containerDefinitions"].append({"name": "proxy", "image": "nginx", "portMappings": [{"containerPort": 80}]})
    result = derive(td)
    assert "say which one serves the app with `container:`" in result.problems[0]
    chosen = derive(td, spec(container="proxy", command=("nginx", "-g", "daemon off;"), wrap_in_timeout=True))
    assert chosen.container == "proxy" and chosen.port == 80
    proxy = chosen.register_kwargs["containerDefinitions"][1]
    assert proxy["entryPoint"][0] == "timeout"
    assert chosen.register_kwargs["containerDefinitions"][0]["entryPoint"] == ["/docker-entrypoint.sh"]


def test_unknown_container_lists_the_real_ones():
    assert "its containers are `web`" in derive(the_spec=spec(container="api")).problems[0]


def test_no_port_is_a_problem():
    td = base_td()
    td["containerDefinitions"][0]["portMappings"] = []
    assert "publishes no port" in derive(td).problems[0]


def test_non_fargate_task_definitions_are_refused():
    result = derive(base_td(networkMode="bridge", requiresCompatibilities=["EC2"], compatibilities=["EC2"]))
    text = "\n".join(result.problems)
    assert "needs `awsvpc`" in text and "not compatible with Fargate" in text


def test_roles_outside_the_allowed_list_are_refused():
    result = derive(limits=Limits(execution_role_arns=("arn:aws:iam::111122223333:role/other",)))
    assert "review apps may not use" in result.problems[0]
    assert isinstance(derive(limits=Limits(execution_role_arns=(EXEC_ROLE,))), taskdef.DerivedTaskDefinition)


def test_an_execution_role_is_never_allowed_as_the_task_role():
    """One list per kind: the role that pulls images and reads secrets can't become the app's own."""
    swapped = base_td(taskRoleArn=EXEC_ROLE)
    result = derive(swapped, limits=Limits(execution_role_arns=(EXEC_ROLE,)))
    assert isinstance(result, Problems)
    assert "as its task role" in result.problems[0] and "allows none" in result.problems[0]


# --------------------------------------------------------------------------- compute options


def test_compute_fields():
    result = parse_spec(
        "task_definition: a\ncpu: 0.5 vCPU\nmemory: 2GB\ncapacity: spot\narchitecture: arm64\n",
        DEFAULT,
        MAXIMUM,
        2048,
        8192,
    )
    assert (result.cpu, result.memory, result.capacity, result.architecture) == (512, 2048, "spot", "arm64")
    plain = parse("task_definition: a\n")
    assert (plain.cpu, plain.memory, plain.capacity, plain.architecture) == (None, None, "on_demand", None)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("cpu: 4096\n", "more than this install allows (2048 units)"),
        ("memory: 16GB\n", "more than this install allows (8192 MiB)"),
        ("cpu: lots\n", "is not CPU units"),
        ("memory: big\n", "is not a size"),
        ("capacity: reserved\n", "use `on_demand` or `spot`"),
        ("architecture: riscv\n", "use `x86_64` or `arm64`"),
    ],
)
def test_compute_problems(text, expected):
    result = parse_spec("task_definition: a\n" + text, DEFAULT, MAXIMUM, 2048, 8192)
    assert expected in "\n".join(result.problems)


def test_derived_size_and_architecture():
    derived = derive(the_spec=spec(cpu=1024, memory=4096, architecture="arm64"))
    assert (derived.cpu, derived.memory, derived.architecture) == (1024, 4096, "arm64")
    kwargs = derived.register_kwargs
    assert (kwargs["cpu"], kwargs["memory"]) == ("1024", "4096")
    assert kwargs["runtimePlatform"] == {"cpuArchitecture": "ARM64", "operatingSystemFamily": "LINUX"}
    kept = derive()
    assert (kept.cpu, kept.memory, kept.architecture) == (256, 512, "x86_64")


def test_sizes_fargate_cannot_run_are_refused():
    result = derive(the_spec=spec(cpu=256, memory=4096))
    assert "does not run 256 CPU units with 4096 MiB" in result.problems[0]
    assert "Fargate has no task size with 300" in derive(the_spec=spec(cpu=300)).problems[0]


def test_label_and_drafts_fields():
    result = parse("task_definition: a\nlabel: review-app\ndrafts: true\n")
    assert (result.label, result.drafts) == ("review-app", True)
    assert "`drafts:` `maybe` must be `true` or `false`" in problems("task_definition: a\ndrafts: maybe\n")
    assert "`label` must be the name of a label" in problems("task_definition: a\nlabel: 3\n")


@pytest.mark.parametrize(
    ("listed", "owned"),
    [
        ("g/p", True),
        ("G/P", True),
        ("14", True),
        ("g/", True),
        ("other g/p", True),
        ("  g/p  ", True),
        ("g/p2", False),
        ("g", False),
        ("g/p/", False),
        ("/", False),
        ("", False),
        ("15", False),
        ("h/", False),
        ("1", False),
        ("g/pp", False),
    ],
)
def test_a_base_definition_is_the_projects_only_if_its_tag_lists_it(listed, owned):
    tags = [{"key": "team", "value": "g/p"}, {"key": taskdef.PROJECTS_TAG, "value": listed}]
    assert taskdef.owned_by(tags, 14, "g/p") is owned


def test_untagged_definitions_and_an_unknown_path_are_nobodys():
    assert not taskdef.owned_by([], 14, "g/p")
    assert not taskdef.owned_by([{"key": taskdef.PROJECTS_TAG, "value": 14}], 14, "g/p")
    assert not taskdef.owned_by([{"key": taskdef.PROJECTS_TAG, "value": "g/ "}], 14, "")  # no path: ids only
    assert taskdef.owned_by([{"key": taskdef.PROJECTS_TAG, "value": "g/ 14"}], 14, "")


def test_the_refusal_names_the_definition_and_the_tag_and_nothing_else():
    text = taskdef.not_usable("team-b`prod")
    assert text.startswith("Task definition `team-b'prod` cannot be used by this project")
    assert f"`{taskdef.PROJECTS_TAG}`" in text and "README" in text

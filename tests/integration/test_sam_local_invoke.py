"""`sam local invoke`, short of the container: SAM CLI's own code says what environment each
function gets from template.yaml, the env-vars file that `make local-services` writes and the
README's parameter overrides; the function is loaded with exactly that environment and invoked
with each sample, in the README's order, against the local services; each answers as the README's
table says. (Only `host.docker.internal`, the container's name for this machine, becomes
127.0.0.1, as Docker's resolver would make it.)"""

from __future__ import annotations

import json
import os
import re

from local import services
from local.events import load_sample
from local.invoke_local import invoke, sam_environments
from local.lambda_runtime import ROOT

ROW = re.compile(r"^\| `(\w+Function)` \| `([\w.]+\.json)` \| (.+) \|$")


def readme_table() -> list[tuple[str, str, list[str]]]:
    text = (ROOT / "README.md").read_text()
    section = text.split("### Try each function with `sam local invoke`", 1)[1].split("\n### ", 1)[0]
    rows = []
    for line in section.splitlines():
        match = ROW.match(line)
        if match:
            rows.append((match.group(1), match.group(2), re.findall(r"`([^`]+)`", match.group(3))))
    return rows


def test_every_sample_answers_as_the_readme_says(tmp_path):
    rows = readme_table()
    assert len(rows) >= 19 and {r[1] for r in rows} == {p.name for p in (ROOT / "events").glob("*.json")} - {
        "local-env.json"
    }, "the README's table covers every sample"
    saved = dict(os.environ)
    world, env = services.start("127.0.0.1", 0, 0)
    try:
        env_file = tmp_path / "local-env.json"
        env_file.write_text(json.dumps(env))
        functions = sorted({row[0] for row in rows})
        environments = sam_environments(env_file, functions)  # what make invoke-local does
        # The emulator runs in this process and reads its account from here; it is no function's setting.
        emulator = {"MOTO_ACCOUNT_ID": os.environ["MOTO_ACCOUNT_ID"]}
        for function, sample, expected in rows:
            given = environments[function]
            assert given["GITLAB_URL"].startswith("http://host.docker.internal:")
            assert given["AWS_ENDPOINT_URL"].startswith("http://host.docker.internal:")
            answer = invoke(function, {**given, **emulator}, load_sample(sample))
            if "statusCode" in answer:
                shown = f"{answer['statusCode']} {answer.get('body') or ''}"
            else:
                shown = json.dumps(answer)
            for fragment in expected:
                assert fragment in shown, f"{function} {sample}: {fragment!r} not in {shown[:300]!r}"
    finally:
        os.environ.clear()
        os.environ.update(saved)
        world.gitlab.stop()
        world.moto.stop()


def test_the_env_vars_file_points_every_declared_variable_at_the_containers_host():
    saved = dict(os.environ)
    world, env = services.start("127.0.0.1", 0, 0)
    try:
        values = env["Parameters"]
        assert values["AWS_ENDPOINT_URL"].startswith("http://host.docker.internal:")
        assert "127.0.0.1" not in json.dumps(env)
        assert env["AuthFunction"] == {"OIDC_ISSUER": ""} and env["WakeFunction"] == {"WAKE_TARGET_GROUP_ARN": ""}
    finally:
        os.environ.clear()
        os.environ.update(saved)
        world.gitlab.stop()
        world.moto.stop()


def test_make_doctor_checks_the_install_local_services_runs(capsys):
    """`make doctor LOCAL=1` in another shell: the stack in moto, the webhook on the local edge."""
    from tools import doctor

    saved = dict(os.environ)
    world, _ = services.start("127.0.0.1", 0, 0)
    try:
        os.environ["LOCAL_AWS_PORT"] = world.moto.url.rsplit(":", 1)[1]
        os.environ["LOCAL_EDGE_PORT"] = str(world.edge().port)
        code = doctor.main(["--local"])
        shown = capsys.readouterr().out
        assert code == 0, shown
        assert shown.startswith("make doctor: stack review-apps-local")
        assert "webhook https://webhook.example.test/webhook answers an unsigned request with 401" in shown
    finally:
        os.environ.clear()
        os.environ.update(saved)
        world.close()
        world.gitlab.stop()
        world.moto.stop()

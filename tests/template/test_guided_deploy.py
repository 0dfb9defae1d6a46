"""`sam deploy --guided` in one sitting, as the README tells a newcomer: SAM CLI itself, on a copy
of the repository, answered prompt by prompt (offline: it stops where it first needs AWS), and the
README's tables of parameters, prompts and outputs checked against the template."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from local.lambda_runtime import ROOT, load_template

TEMPLATE = load_template()
README = (ROOT / "README.md").read_text()
DEPLOY = README.split("## Deploy it", 1)[1].split("\n## ", 1)[0]
IP_MODE = ["https://gitlab.example.com", "review-apps", "subnet-0123456789abcdef0", "sg-0123456789abcdef0"]
ALB = [
    "arn:aws:elasticloadbalancing:eu-west-1:111122223333:listener/app/shared/0123456789abcdef/0123456789abcdef",
    "review.example.com",
    "vpc-0123456789abcdef0",
]


def sam() -> str:
    path = Path(os.environ.get("SAM_CLI", ROOT / ".venv-sam" / "bin" / "sam"))
    if not path.exists():
        pytest.fail("aws-sam-cli is not installed; run `make test`, which installs it")
    return str(path)


def guided(tmp_path: Path, answers: list[str], auth: str = "y") -> tuple[str, str]:
    """Run `sam deploy --guided` with `answers` for the first parameters and Enter for the rest,
    then the README's answers to SAM's own questions. Returns its output and the samconfig.toml."""
    for name in ("template.yaml", "samconfig.toml"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "functions", tmp_path / "functions", ignore=shutil.ignore_patterns("__pycache__"))
    parameters = len(TEMPLATE["Parameters"])
    typed = ["", ""] + answers + [""] * (parameters - len(answers))  # stack name and Region: Enter
    typed += ["", "", "", auth, auth, "", "", ""]
    done = subprocess.run(
        [sam(), "deploy", "--guided"],
        cwd=tmp_path,
        input="\n".join(typed) + "\n",
        capture_output=True,
        text=True,
        timeout=180,
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "eu-west-1",
            "AWS_ENDPOINT_URL": "http://127.0.0.1:9",  # where AWS would be: nothing listens, so it stops there
            "AWS_MAX_ATTEMPTS": "1",
            "SAM_CLI_TELEMETRY": "0",
        },
    )
    config = (tmp_path / "samconfig.toml").read_text()
    return done.stdout + done.stderr, config


@pytest.mark.parametrize(("mode", "answers"), [("IP mode", IP_MODE), ("address mode", IP_MODE + ALB)])
def test_a_common_install_answers_only_what_has_no_default(tmp_path, mode, answers):
    shown, _ = guided(tmp_path, answers)
    asked = re.findall(r"Parameter (\w+) \[", shown)
    assert asked == list(TEMPLATE["Parameters"]), "SAM asks every parameter, in the template's order"
    assert asked[: len(IP_MODE)] == [name for name, p in TEMPLATE["Parameters"].items() if "Default" not in p]
    # Past every prompt, the two "no authentication" questions included, to the first AWS call.
    assert "WebhookFunction has no authentication. Is this okay? [y/N]" in shown
    assert "AuthFunction has no authentication. Is this okay? [y/N]" in shown
    assert "Looking for resources needed for deployment" in shown, shown[-1500:]
    assert "Security Constraints Not Satisfied" not in shown
    # What the README says a common install answers is what this one typed.
    said = {
        "IP mode": rf"\*\*{len(answers)}\*\* of its {len(asked)} parameters",
        "address mode": rf"\*\*{len(answers)}\*\* with an ALB",
    }
    assert re.search(said[mode], " ".join(DEPLOY.split())), said[mode]


def test_enter_at_the_authentication_question_aborts_as_the_readme_says(tmp_path):
    shown, _ = guided(tmp_path, IP_MODE, auth="")
    assert "Security Constraints Not Satisfied!" in shown and "Looking for resources" not in shown
    assert "`Security Constraints Not Satisfied!`" in DEPLOY


def test_the_readme_prompts_are_sams_in_its_order():
    prompts = re.findall(r"^\| `([^`]+\[[yYnN/]+\])`", DEPLOY, re.MULTILINE)
    assert prompts == [
        "Confirm changes before deploy [Y/n]",
        "Allow SAM CLI IAM role creation [Y/n]",
        "Disable rollback [y/N]",
        "WebhookFunction has no authentication. Is this okay? [y/N]",
        "AuthFunction has no authentication. Is this okay? [y/N]",
        "Save arguments to configuration file [Y/n]",
    ]


def test_every_parameter_is_in_the_readme_table_with_the_templates_default():
    rows = re.findall(r"^\| `(\w+)`(?:, `(\w+)`)? \| .* \| ([^|]+) \|$", DEPLOY, re.MULTILINE)
    documented = {}
    for first, second, default in rows:
        defaults = re.findall(r"`([^`]*)`", default) or [default.strip()]
        for index, name in enumerate(n for n in (first, second) if n):
            documented[name] = defaults[min(index, len(defaults) - 1)]
    parameters = TEMPLATE["Parameters"]
    assert set(documented) >= set(parameters), sorted(set(parameters) - set(documented))
    for name, parameter in parameters.items():
        shown = documented[name].split(" (")[0]
        expected = str(parameter["Default"]) if "Default" in parameter else "—"
        assert shown == (expected or "empty"), (name, shown, expected)


def test_every_output_is_documented():
    outputs = re.findall(r"^\| `(\w+)` \|", DEPLOY.split("### The outputs", 1)[1].split("\n### ", 1)[0], re.MULTILINE)
    assert sorted(outputs) == sorted(TEMPLATE["Outputs"])

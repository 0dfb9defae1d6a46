"""Cold init: importing each handler module in a fresh process, against the floor every
Python Lambda that talks to ECS pays (`import boto3; boto3.client("ecs")`), measured in the
same run, in a virtualenv shaped like the Lambda runtime (runtime requirements + boto3 only)."""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv-bench-runtime"
RUNS = 15

FLOOR = 'import boto3; boto3.client("ecs", region_name="us-east-1")'
MODULES = {
    "WebhookFunction": "webhook.app",
    "TaskEventsFunction": "task_events.app",
    "ReconcileFunction": "reconciler.app",
    "WakeFunction": "wake.app",
    "AuthFunction": "auth.app",
}
# The clients each function creates on its first request (they are built lazily, so a fair
# comparison with the floor, which creates one, also shows import + these).
CLIENTS = {
    "WebhookFunction": ("ssm", "dynamodb", "ecs", "scheduler"),
    "TaskEventsFunction": ("ssm", "dynamodb", "ecs", "scheduler"),  # ec2 only with public IPs
    "ReconcileFunction": ("ssm", "dynamodb", "ecs", "scheduler"),
    "WakeFunction": ("ssm", "dynamodb", "ecs", "scheduler", "elbv2", "secretsmanager"),
    "AuthFunction": ("ssm", "dynamodb", "secretsmanager", "kms"),
}
ENV = {
    "GITLAB_URL": "https://gitlab.example.com",
    "GITLAB_TOKEN_PARAMETER": "/review-apps/gitlab-token",
    "WEBHOOK_SECRET_PARAMETER": "/review-apps/webhook-secret",
    "TABLE_NAME": "records",
    "CLUSTER": "review-apps",
    "SUBNETS": "subnet-1",
    "SECURITY_GROUPS": "sg-1",
    "INSTALL_ID": "review-apps",
    "SCHEDULE_GROUP": "review-apps",
    "SCHEDULER_ROLE_ARN": "arn:aws:iam::111122223333:role/review-apps-deadlines",
    # Address mode, so every function (and WakeFunction at all) starts as it would with an ALB.
    "ALB_LISTENER_ARN": "arn:aws:elasticloadbalancing:us-east-1:111122223333:"
    "listener/app/shared/50dc6c495c0c9188/f2f7dc8efc522ab2",
    "REVIEW_DOMAIN": "review.example.com",
    "VPC_ID": "vpc-0a1b2c3d",
    "MAX_RUNNING_APPS": "20",
    # Sign-in on (the default in address mode): rule writers read the ALB's client secret.
    "OIDC_ISSUER": "https://abc123def4.execute-api.us-east-1.amazonaws.com/auth",
    "OIDC_CLIENT_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:111122223333:secret:review-apps-alb-AbCdEf",
    "OIDC_SIGNING_KEY_ARN": "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
    "SIGNIN_TABLE_NAME": "signins",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "x",
    "AWS_SECRET_ACCESS_KEY": "x",
}


def lambda_python() -> str:
    """The Lambda runtime's Python (3.13) when this machine has it, else this one."""
    candidates = [str(p) for p in sorted(Path.home().glob(".pyenv/versions/3.13*/bin/python3"))]
    candidates.append(shutil.which("python3.13") or "")
    for candidate in filter(None, candidates):
        probe = subprocess.run([candidate, "--version"], capture_output=True, text=True)
        if probe.returncode == 0 and "3.13" in probe.stdout:
            return candidate
    return sys.executable


def runtime_venv() -> Path:
    python = VENV / "bin" / "python"
    stamp = VENV / ".installed"
    wanted = (ROOT / "requirements.txt").read_text() + _boto3_pin()
    if not stamp.exists() or stamp.read_text() != wanted:
        subprocess.run([lambda_python(), "-m", "venv", "--clear", str(VENV)], check=True)
        subprocess.run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-r",
                str(ROOT / "requirements.txt"),
                _boto3_pin(),
            ],
            check=True,
        )
        stamp.write_text(wanted)
    return python


def _boto3_pin() -> str:
    for line in (ROOT / "requirements-dev.txt").read_text().splitlines():
        if line.startswith("boto3=="):
            return line.strip()
    return "boto3"


def _time(python: Path, statement: str) -> float:
    code = f"import time; t = time.perf_counter(); {statement}; print(time.perf_counter() - t)"
    env = {
        **ENV,
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(ROOT / "functions"),
        "PYTHONDONTWRITEBYTECODE": "0",
    }
    out = subprocess.run([str(python), "-c", code], env=env, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def heaviest_imports(python: Path, module: str, top: int = 6) -> list[tuple[str, float]]:
    """What the handler module's own imports cost (cumulative), from one `-X importtime` run.
    importtime prints children before their parent, indented two more spaces."""
    env = {**ENV, "PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT / "functions")}
    result = subprocess.run(
        [str(python), "-X", "importtime", "-c", f"import {module}"], env=env, capture_output=True, text=True, check=True
    )
    entries = []
    for line in result.stderr.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( +)(\S+)", line)
        if match:
            entries.append((len(match.group(3)), match.group(4), int(match.group(2)) / 1e6))
    target = next(i for i, (_, name, _) in enumerate(entries) if name == module)
    depth = entries[target][0]
    children = []
    for indent, name, seconds in reversed(entries[:target]):
        if indent <= depth:
            break
        if indent == depth + 2:
            children.append((name, seconds))
    return sorted(children, key=lambda kv: kv[1], reverse=True)[:top]


def measure() -> dict:
    python = runtime_venv()
    version = subprocess.run([str(python), "--version"], capture_output=True, text=True).stdout.strip()
    for statement in [FLOOR] + [f"import {m}" for m in MODULES.values()]:
        _time(python, statement)  # compile .pyc files once, as the deployment package would ship them
    subjects = {"floor": FLOOR}
    for name, module in MODULES.items():
        subjects[name] = f"import {module}"
        clients = "; ".join(f'm.services.aws("{c}")' for c in CLIENTS[name])
        subjects[name + "+clients"] = f"import {module} as m; {clients}"
    samples: dict[str, list[float]] = {name: [] for name in subjects}
    for _ in range(RUNS):  # interleaved, so machine noise hits every subject alike
        for name, statement in subjects.items():
            samples[name].append(_time(python, statement))
    medians = {name: statistics.median(values) for name, values in samples.items()}
    return {
        "python": version,
        "runs": RUNS,
        "floor": medians["floor"],
        "functions": {name: medians[name] for name in MODULES},
        "with_clients": {name: medians[name + "+clients"] for name in MODULES},
        "heaviest": {name: heaviest_imports(python, module) for name, module in MODULES.items()},
    }

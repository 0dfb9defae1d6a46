"""`make invoke-local FUNCTION=… EVENT=…`: invoke a function as `sam local invoke` would, without
Docker. SAM CLI's own code (local/sam_env.py, in .venv-sam) says what environment the function
gets from template.yaml, the env-vars file `make local-services` wrote and the README's parameter
overrides; the handler is then imported fresh (a cold start) in this process with exactly that
environment and called with the sample. Only `host.docker.internal`, the container's name for
this machine, becomes 127.0.0.1.

    make local-services                                                       # terminal 1
    make invoke-local FUNCTION=WakeFunction EVENT=wake_sleeping_host.json     # terminal 2
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from local.events import load_sample
from local.lambda_runtime import ROOT, LambdaContext, load_handler
from local.services import ENV_FILE


def sam_python() -> Path:
    return Path(os.environ.get("SAM_CLI", ROOT / ".venv-sam" / "bin" / "sam")).with_name("python")


def sam_environments(env_file: Path, functions: list[str]) -> dict[str, dict[str, str]]:
    """What SAM CLI resolves as each function's environment (the shell's AWS settings included)."""
    python = sam_python()
    if not python.exists():
        raise SystemExit("aws-sam-cli is not installed in .venv-sam: make invoke-local installs it")
    asked = subprocess.run(
        [str(python), "local/sam_env.py", str(env_file), *functions],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            **os.environ,
            "SAM_CLI_TELEMETRY": "0",
        },
    )
    if asked.returncode != 0:
        raise SystemExit(asked.stderr[-2000:])
    return dict(json.loads(asked.stdout))


def invoke(function: str, environment: dict[str, str], event: dict[str, Any]) -> Any:
    """Call `function` in this process with `environment` (as the container's), a cold start."""
    os.environ.clear()
    os.environ.update({k: v.replace("host.docker.internal", "127.0.0.1") for k, v in environment.items()})
    return load_handler(function)(event, LambdaContext(function_name=function))


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: make invoke-local FUNCTION=<logical id> EVENT=<file in events/>", file=sys.stderr)
        return 2
    function, event_name = args
    if not ENV_FILE.exists():
        print(f"{ENV_FILE.relative_to(ROOT)} is missing: start make local-services first", file=sys.stderr)
        return 2
    event_path = ROOT / "events" / event_name
    if not event_path.is_file():
        known = sorted(p.name for p in event_path.parent.glob("*.json") if p != ENV_FILE)
        print(f"events/{event_name} does not exist: pick one of {', '.join(known)}", file=sys.stderr)
        return 2
    environment = sam_environments(ENV_FILE, [function])[function]
    print(json.dumps(invoke(function, environment, load_sample(event_name)), indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

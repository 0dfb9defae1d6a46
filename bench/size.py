"""Deployment package size of each function after `sam build` (with the runtime's Python)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from bench.cold import lambda_python

ROOT = Path(__file__).resolve().parent.parent


def _megabytes(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 1e6


def measure(sam: str) -> dict:
    python = lambda_python()
    if "3.13" not in subprocess.run([python, "--version"], capture_output=True, text=True).stdout:
        return {"skipped": "no Python 3.13 on this machine: sam build needs the Lambda runtime's Python"}
    with tempfile.TemporaryDirectory() as scratch:
        env = {**os.environ, "PATH": f"{Path(python).parent}:{os.environ['PATH']}", "SAM_CLI_TELEMETRY": "0"}
        env.pop("AWS_ENDPOINT_URL", None)
        build = Path(scratch) / "build"
        result = subprocess.run(
            [sam, "build", "--build-dir", str(build), "--cache-dir", str(Path(scratch) / "cache")],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            return {"skipped": f"sam build failed: {result.stderr.strip().splitlines()[-1:]}"}
        sizes = {d.name: _megabytes(d) for d in sorted(build.iterdir()) if d.is_dir()}
        zipped = {}
        for name in sizes:
            archive = shutil.make_archive(str(Path(scratch) / name), "zip", build / name)
            zipped[name] = Path(archive).stat().st_size / 1e6
        version = subprocess.run([python, "--version"], capture_output=True, text=True).stdout.strip()
        return {"unzipped": sizes, "zipped": zipped, "python": version}

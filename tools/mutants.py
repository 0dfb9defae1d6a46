"""`make mutants`: mutation testing of the pure core with mutmut, against the unit tests.

mutmut names modules after their paths and knows `src/` as a source root, so the run happens in
a scratch copy (.mutation/) where functions/ is src/. Prints the score; not part of CI.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRATCH = ROOT / ".mutation"
PURE_CORE = [
    "src/review_apps/lifecycle/*",
    "src/review_apps/messages.py",
    "src/review_apps/pages.py",
    "src/review_apps/spec.py",
    "src/review_apps/taskdef.py",
    "src/review_apps/compose.py",
    "src/review_apps/durations.py",
    "src/review_apps/sizes.py",
    "src/review_apps/auth.py",
]
PYPROJECT = f"""
[tool.pytest.ini_options]
testpaths = ["tests/unit"]
pythonpath = [".", "src"]
addopts = "-q -p no:cacheprovider"

[tool.mutmut]
source_paths = ["src"]
only_mutate = {json.dumps(PURE_CORE)}
also_copy = ["local", "tools", "events", "README.md"]
pytest_add_cli_args_test_selection = ["tests/unit"]
"""


def main() -> int:
    shutil.rmtree(SCRATCH, ignore_errors=True)
    SCRATCH.mkdir()
    shutil.copytree(ROOT / "functions", SCRATCH / "src", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("tests", "local", "tools", "events"):
        shutil.copytree(ROOT / name, SCRATCH / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "README.md", SCRATCH / "README.md")  # a unit test runs the README's CI job
    (SCRATCH / "pyproject.toml").write_text(PYPROJECT)
    # The property-based parser test needs fewer examples per mutant than in CI to finish in time.
    env = {**os.environ, "HOSTILE_EXAMPLES": os.environ.get("HOSTILE_EXAMPLES", "25")}
    mutmut = str(Path(sys.executable).with_name("mutmut"))
    subprocess.run([mutmut, "run", "--max-children", str(os.cpu_count() or 2)], cwd=SCRATCH, env=env, check=False)
    results = subprocess.run(
        [mutmut, "results", "--all", "true"], cwd=SCRATCH, env=env, capture_output=True, text=True, check=False
    ).stdout
    counts: dict[str, int] = {}
    survivors = []
    for line in results.splitlines():
        name, _, status = line.strip().rpartition(": ")
        if not name:
            continue
        counts[status] = counts.get(status, 0) + 1
        if status == "survived":
            survivors.append(name)
    total = sum(counts.values())
    killed = counts.get("killed", 0) + counts.get("timeout", 0)
    (SCRATCH / "survivors.txt").write_text("\n".join(survivors) + "\n")
    print(f"mutants: {total}, " + ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())))
    if total:
        print(
            f"mutation score: {killed / total:.1%} killed ({killed} of {total}); survivors in .mutation/survivors.txt"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

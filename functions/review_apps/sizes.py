"""Task sizes as people write them, and the combinations Fargate accepts."""

from __future__ import annotations

import re
from typing import Any

# Fargate's task sizes: CPU units → the memory (MiB) it may have.
FARGATE_MEMORY = {
    256: (512, 1024, 2048),
    512: tuple(range(1024, 4096 + 1, 1024)),
    1024: tuple(range(2048, 8192 + 1, 1024)),
    2048: tuple(range(4096, 16384 + 1, 1024)),
    4096: tuple(range(8192, 30720 + 1, 1024)),
    8192: tuple(range(16384, 61440 + 1, 4096)),
    16384: tuple(range(32768, 122880 + 1, 8192)),
}


def cpu_units(value: Any) -> int | None:
    """`256` (units) or `0.25 vCPU` → CPU units; None if unreadable."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    text = str(value).strip().lower().replace(" ", "")
    match = re.match(r"^(\d+(?:\.\d+)?)(vcpu)?$", text)
    if not match:
        return None
    number = float(match.group(1))
    return int(number * 1024) if match.group(2) else int(number)


def memory_mib(value: Any) -> int | None:
    """`512` (MiB), `512MB`, `1GB`, `0.5GB` → MiB; None if unreadable."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    text = str(value).strip().upper().replace(" ", "")
    match = re.match(r"^(\d+(?:\.\d+)?)(MB|MIB|GB|GIB|G|M)?$", text)
    if not match:
        return None
    number = float(match.group(1))
    return int(number * 1024) if (match.group(2) or "").startswith("G") else int(number)


def fargate_problem(cpu: int, memory: int) -> str | None:
    allowed = FARGATE_MEMORY.get(cpu)
    if allowed is None:
        return f"Fargate has no task size with {cpu} CPU units; use one of {', '.join(map(str, FARGATE_MEMORY))}."
    if memory not in allowed:
        low, high = allowed[0], allowed[-1]
        return (
            f"Fargate does not run {cpu} CPU units with {memory} MiB of memory; with {cpu} units use "
            f"{low}–{high} MiB (in steps of {allowed[1] - allowed[0] if len(allowed) > 1 else low})."
        )
    return None


def describe(cpu: int, memory: int) -> str:
    return f"{cpu / 1024:g} vCPU, {memory / 1024:g} GB"

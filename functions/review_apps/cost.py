"""What a review app costs: Fargate's per-second price for its size, architecture and capacity,
plus the public IPv4 address when it has one. Pure arithmetic on a price table the install
can override (prices differ by region and change over time)."""

from __future__ import annotations

import json
from dataclasses import dataclass, fields, replace

MINIMUM_BILLED_SECONDS = 60  # Fargate bills per second with a one-minute minimum


class PriceTableError(ValueError):
    pass


@dataclass(frozen=True)
class Prices:
    """USD per hour. Defaults: us-east-1, Linux (the install's PRICES setting overrides)."""

    x86_64_vcpu_hour: float = 0.04048
    x86_64_gb_hour: float = 0.004445
    arm64_vcpu_hour: float = 0.03238
    arm64_gb_hour: float = 0.00356
    # Fargate Spot's price moves with the market; "up to 70% off" is the usual figure.
    spot_factor: float = 0.30
    public_ipv4_hour: float = 0.005


def load_prices(text: str) -> Prices:
    """Prices from a JSON object of overrides, e.g. {"spot_factor": 0.35}; "" for the defaults."""
    if not text.strip():
        return Prices()
    try:
        overrides = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PriceTableError(f"PRICES is not JSON: {exc}") from None
    known = {f.name for f in fields(Prices)}
    if not isinstance(overrides, dict) or set(overrides) - known:
        raise PriceTableError(f"PRICES must be a JSON object with keys among {sorted(known)}")
    for key, value in overrides.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise PriceTableError(f"PRICES.{key} must be a number of dollars ≥ 0")
    return replace(Prices(), **{k: float(v) for k, v in overrides.items()})


def hourly_rate(
    cpu_units: int, memory_mib: int, architecture: str, spot: bool, public_ip: bool, prices: Prices
) -> float:
    arm = architecture == "arm64"
    vcpu_hour = prices.arm64_vcpu_hour if arm else prices.x86_64_vcpu_hour
    gb_hour = prices.arm64_gb_hour if arm else prices.x86_64_gb_hour
    compute = cpu_units / 1024 * vcpu_hour + memory_mib / 1024 * gb_hour
    if spot:
        compute *= prices.spot_factor
    return compute + (prices.public_ipv4_hour if public_ip else 0.0)


def run_cost(seconds: int, rate_per_hour: float) -> float:
    return max(seconds, MINIMUM_BILLED_SECONDS) / 3600 * rate_per_hour


def dollars(amount: float) -> str:
    """Small amounts keep their cents' fractions: $0.0063, $1.27."""
    return f"${amount:.4f}" if amount < 1 else f"${amount:.2f}"

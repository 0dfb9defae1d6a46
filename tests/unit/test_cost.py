"""What a review app costs, from the price table."""

from __future__ import annotations

import pytest

from review_apps.cost import Prices, PriceTableError, dollars, hourly_rate, load_prices, run_cost

PRICES = Prices()


def test_x86_on_demand_rate():
    # 0.25 vCPU × $0.04048 + 0.5 GB × $0.004445
    assert hourly_rate(256, 512, "x86_64", False, False, PRICES) == pytest.approx(0.0123425)


def test_arm_spot_with_public_ip_rate():
    # (1 vCPU × $0.03238 + 2 GB × $0.00356) × 0.30 + $0.005
    assert hourly_rate(1024, 2048, "arm64", True, True, PRICES) == pytest.approx(0.016850)


def test_a_known_run():
    """The figure the MR shows for 30 minutes of 0.25 vCPU / 0.5 GB on x86, on demand."""
    assert dollars(run_cost(1800, hourly_rate(256, 512, "x86_64", False, False, PRICES))) == "$0.0062"


def test_one_minute_minimum():
    assert run_cost(5, 3.6) == pytest.approx(0.06)


def test_dollars():
    assert [dollars(x) for x in (0.00617, 0.5, 1.2749, 12)] == ["$0.0062", "$0.5000", "$1.27", "$12.00"]


def test_price_table_overrides():
    assert load_prices("") == PRICES
    custom = load_prices('{"spot_factor": 0.35, "x86_64_vcpu_hour": 0.05}')
    assert custom.spot_factor == 0.35 and custom.x86_64_vcpu_hour == 0.05 and custom.arm64_gb_hour == 0.00356


@pytest.mark.parametrize("text", ["nope", "[]", '{"gpu_hour": 1}', '{"spot_factor": "cheap"}', '{"spot_factor": -1}'])
def test_bad_price_tables(text):
    with pytest.raises(PriceTableError):
        load_prices(text)

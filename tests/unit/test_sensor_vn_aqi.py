"""VN_AQI (Quyết định 1459/QĐ-TCMT): sub-indices on and between breakpoints, NowCast, the hourly AQI, the accumulator.

Expected values are computed by hand here with the Decision's formula
``AQI_x = (I[i+1] - I[i]) / (BP[i+1] - BP[i]) * (C_x - BP[i]) + I[i]``, so the test reads as the method.
"""

from __future__ import annotations

import datetime as dt
import math

import pytest

from ioc_common.sensors.vn_aqi import (
    BREAKPOINTS,
    INDEX_LEVELS,
    VnAqiAccumulator,
    hourly_aqi,
    nowcast,
    sub_index,
)


def by_formula(i_low: float, i_high: float, bp_low: float, bp_high: float, c: float) -> int:
    return math.floor((i_high - i_low) / (bp_high - bp_low) * (c - bp_low) + i_low + 0.5)


@pytest.mark.parametrize("parameter", sorted(BREAKPOINTS))
def test_a_concentration_on_a_breakpoint_gets_that_breakpoints_index(parameter: str) -> None:
    for bp, index in zip(BREAKPOINTS[parameter], INDEX_LEVELS, strict=False):  # type: ignore[index]
        assert sub_index(parameter, bp) == index  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("parameter", "c", "expected"),
    [
        ("co", 20_000, by_formula(50, 100, 10_000, 30_000, 20_000)),  # 75
        ("so2", 200, by_formula(50, 100, 125, 350, 200)),  # 66.67 -> 67
        ("no2", 150, by_formula(50, 100, 100, 200, 150)),  # 75
        ("o3", 180, by_formula(50, 100, 160, 200, 180)),  # 75
        ("o3_8h", 110, by_formula(50, 100, 100, 120, 110)),  # 75
        ("pm10", 380, by_formula(200, 300, 350, 420, 380)),  # 242.86 -> 243
        ("pm2_5", 35.714, by_formula(50, 100, 25, 50, 35.714)),  # 71.43 -> 71
        ("pm2_5", 499.9, by_formula(400, 500, 350, 500, 499.9)),  # 499.93 -> 500
    ],
)
def test_sub_index_interpolates_between_breakpoints(parameter: str, c: float, expected: int) -> None:
    assert sub_index(parameter, c) == expected  # type: ignore[arg-type]


def test_worked_values_are_what_the_formula_gives() -> None:
    # Guard against a by_formula mistake hiding one in sub_index: a few written out.
    assert sub_index("co", 20_000) == 75
    assert sub_index("so2", 200) == 67
    assert sub_index("pm10", 380) == 243


def test_rounding_is_half_up_not_to_even() -> None:
    # PM2.5 0.25 ug/m3: 50/25 * 0.25 = 0.5 -> 1 (Python's round() would give 0).
    assert sub_index("pm2_5", 0.25) == 1
    assert sub_index("pm2_5", 0.75) == 2  # 1.5 -> 2


@pytest.mark.parametrize("parameter", ["co", "so2", "no2", "o3", "pm10", "pm2_5"])
def test_above_the_table_caps_at_500(parameter: str) -> None:
    top = BREAKPOINTS[parameter][-1]  # type: ignore[index]
    assert sub_index(parameter, top * 1.01) == 500  # type: ignore[arg-type]
    assert sub_index(parameter, top * 100) == 500  # type: ignore[arg-type]


def test_o3_8h_is_not_defined_above_400() -> None:
    assert sub_index("o3_8h", 400) == 300
    assert sub_index("o3_8h", 400.1) is None


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf")])
def test_negative_or_non_numbers_are_refused(bad: float) -> None:
    with pytest.raises(ValueError, match="pm2_5"):
        sub_index("pm2_5", bad)


def test_nowcast_weights_by_the_ratio_of_min_to_max() -> None:
    # w* = 30/40 = 0.75 > 1/2, so w = 0.75: (40 + 0.75*30) / (1 + 0.75)
    assert nowcast([40, 30]) == pytest.approx((40 + 0.75 * 30) / 1.75)


def test_nowcast_weight_floors_at_one_half() -> None:
    # w* = 10/100 = 0.1 -> w = 0.5: (100 + 0.5*10) / 1.5 = 70
    assert nowcast([100, 10]) == pytest.approx(70.0)


def test_nowcast_skips_missing_hours_but_keeps_their_position() -> None:
    # c1 missing: c2 = 30 weighs w^1, c3 = 20 weighs w^2, w = 20/30
    w = 20 / 30
    assert nowcast([None, 30, 20]) == pytest.approx((w * 30 + w**2 * 20) / (w + w**2))


def test_nowcast_needs_two_of_the_three_most_recent_hours() -> None:
    assert nowcast([40]) is None
    assert nowcast([40, None, None, 30, 30]) is None
    assert nowcast([None, None, 30, 30]) is None
    assert nowcast([40, None, 30]) is not None


def test_nowcast_uses_at_most_twelve_hours_and_handles_all_zero() -> None:
    twelve = [10.0] * 12
    assert nowcast([*twelve, 10_000.0]) == pytest.approx(10.0)
    assert nowcast([0.0, 0.0, 0.0]) == 0.0


def test_hourly_aqi_is_the_largest_sub_index() -> None:
    result = hourly_aqi({"pm2_5": [40, 30], "co": [20_000], "no2": [150], "so2": [50]})
    assert result is not None
    assert result.sub_indices["pm2_5"] == by_formula(50, 100, 25, 50, (40 + 0.75 * 30) / 1.75)  # 71
    assert result.sub_indices["so2"] == by_formula(0, 50, 0, 125, 50)  # 20
    assert result.aqi == 75
    assert result.dominant in ("co", "no2")


def test_hourly_aqi_needs_pm() -> None:
    assert hourly_aqi({"co": [20_000], "no2": [150]}) is None
    assert hourly_aqi({"pm10": [60], "co": [20_000]}) is None  # PM10 without 2 of 3 recent hours
    only_pm10 = hourly_aqi({"pm10": [60, 60]})
    assert only_pm10 is not None
    assert only_pm10.aqi == by_formula(50, 100, 50, 150, 60)  # 55


def test_gases_use_only_the_most_recent_hour() -> None:
    result = hourly_aqi({"pm10": [60, 60], "so2": [None, 800]})
    assert result is not None
    assert "so2" not in result.sub_indices


def test_hourly_aqi_caps_at_500() -> None:
    result = hourly_aqi({"pm2_5": [900, 900], "co": [1_000_000]})
    assert result is not None
    assert result.aqi == 500


HOUR0 = dt.datetime(2026, 11, 26, 0, 0, tzinfo=dt.UTC)


def feed(acc: VnAqiAccumulator, hour: int, pm25: list[float], **gases: float) -> None:
    for minute, value in enumerate(pm25):
        acc.add(HOUR0 + dt.timedelta(hours=hour, minutes=minute * 10), {"pm2_5": value, "temperature_c": 25, **gases})


def test_accumulator_gives_nothing_until_two_of_three_completed_hours_have_pm() -> None:
    acc = VnAqiAccumulator()
    feed(acc, 0, [30, 50])  # hour 0 mean 40
    assert acc.aqi_at(HOUR0 + dt.timedelta(minutes=50)) is None  # hour 0 is still in progress
    feed(acc, 1, [20, 40])  # hour 1 mean 30
    assert acc.aqi_at(HOUR0 + dt.timedelta(hours=1, minutes=30)) is None  # only hour 0 completed
    result = acc.aqi_at(HOUR0 + dt.timedelta(hours=2, minutes=5))
    assert result is not None
    w = 30 / 40
    assert result.aqi == by_formula(50, 100, 25, 50, (30 + w * 40) / (1 + w))


def test_accumulator_ignores_the_hour_in_progress_and_other_metrics() -> None:
    acc = VnAqiAccumulator()
    feed(acc, 0, [40])
    feed(acc, 1, [40])
    before = acc.aqi_at(HOUR0 + dt.timedelta(hours=2))
    feed(acc, 2, [400])  # the current hour: not a mean yet
    assert acc.aqi_at(HOUR0 + dt.timedelta(hours=2, minutes=30)) == before
    assert before is not None
    assert set(before.sub_indices) == {"pm2_5"}


def test_accumulator_gas_uses_the_last_completed_hour_mean() -> None:
    acc = VnAqiAccumulator()
    feed(acc, 0, [10, 10], co=10_000)
    feed(acc, 1, [10, 10], co=30_000)
    result = acc.aqi_at(HOUR0 + dt.timedelta(hours=2))
    assert result is not None
    assert result.sub_indices["co"] == 100
    assert result.aqi == 100


def test_accumulator_forgets_hours_older_than_twelve() -> None:
    acc = VnAqiAccumulator()
    feed(acc, 0, [500])
    feed(acc, 1, [500])
    feed(acc, 20, [10])
    feed(acc, 21, [10])
    result = acc.aqi_at(HOUR0 + dt.timedelta(hours=22))
    assert result is not None
    assert result.aqi == by_formula(0, 50, 0, 25, 10)  # 20: the 500s are gone
    means = acc.hourly_means(HOUR0 + dt.timedelta(hours=22))["pm2_5"]
    assert means[:2] == [10, 10]
    assert all(m is None for m in means[2:])


def test_a_late_reading_for_a_completed_hour_updates_the_aqi() -> None:
    acc = VnAqiAccumulator()
    feed(acc, 0, [40])
    feed(acc, 1, [40])
    now = HOUR0 + dt.timedelta(hours=2, minutes=1)
    first = acc.aqi_at(now)
    acc.add(HOUR0 + dt.timedelta(hours=1, minutes=59), {"pm2_5": 200})  # hour 1 mean becomes 120
    second = acc.aqi_at(now)
    assert first is not None
    assert second is not None
    assert second.aqi > first.aqi

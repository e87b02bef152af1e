"""Unit conversion and calibration: each accepted unit lands on the contract's unit, unknown units are named."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from ioc_common.sensors.calibration import Calibration
from ioc_common.sensors.units import MOLAR_VOLUME_L, UnitError, accepted_units, to_si


@pytest.mark.parametrize(
    ("metric", "value", "unit", "expected"),
    [
        ("water_level_m", 4.12, "m", 4.12),
        ("water_level_m", 412, "cm", 4.12),
        ("water_level_m", 4120, "mm", 4.12),
        ("water_level_m", 10, "ft", 3.048),
        ("distance", 512, "cm", 5.12),
        ("temperature_c", 25, "degC", 25),
        ("temperature_c", 25, "Cel", 25),
        ("temperature_c", 25, "°C", 25),
        ("temperature_c", 212, "degF", 100),
        ("temperature_c", 32, "F", 0),
        ("temperature_c", 273.15, "K", 0),
        ("humidity_pct", 81, "%", 81),
        ("humidity_pct", 81, "%RH", 81),
        ("humidity_pct", 0.81, "1", 81),
        ("pm2_5", 35, "ug/m3", 35),
        ("pm2_5", 35, "µg/m³", 35),
        ("pm10", 0.058, "mg/m3", 58),
        ("co", 5, "mg/m3", 5000),
        ("smoke", 1, "bool", 1),
        ("flame", 50, "%", 0.5),
        ("fire_danger_level", 4, "level", 4),
        ("noise_db", 61, "dB(A)", 61),
        ("vn_aqi", 87, "AQI", 87),
    ],
)
def test_known_units_convert_to_the_contract_unit(metric: str, value: float, unit: str, expected: float) -> None:
    assert to_si(metric, value, unit) == pytest.approx(expected)  # type: ignore[arg-type]


@pytest.mark.parametrize(("gas", "weight"), [("co", 28.01), ("no2", 46.01), ("so2", 64.07), ("o3", 48.00)])
def test_gas_volume_ratios_use_molar_volume_at_25_degrees(gas: str, weight: float) -> None:
    # 1 ppb of a gas of M g/mol at 25 degC, 1 atm is M / 24.45 ug/m3; 1 ppm is a thousand times that.
    assert MOLAR_VOLUME_L == 24.45
    assert to_si(gas, 1, "ppb") == pytest.approx(weight / 24.45)  # type: ignore[arg-type]
    assert to_si(gas, 1, "ppm") == pytest.approx(1000 * weight / 24.45)  # type: ignore[arg-type]
    assert to_si(gas, 40, "ug/m3") == 40  # type: ignore[arg-type]


def test_no2_ppb_worked_example() -> None:
    # 21 ppb NO2 = 21 * 46.01 / 24.45 = 39.5178 ug/m3
    assert to_si("no2", 21, "ppb") == pytest.approx(39.5178, abs=1e-4)


@pytest.mark.parametrize(("metric", "unit"), [("water_level_m", "furlong"), ("pm2_5", "ppb"), ("smoke", "m")])
def test_unknown_unit_names_the_unit_and_the_accepted_ones(metric: str, unit: str) -> None:
    with pytest.raises(UnitError) as caught:
        to_si(metric, 1.0, unit)  # type: ignore[arg-type]
    message = str(caught.value)
    assert repr(unit) in message
    assert metric in message
    assert all(accepted in message for accepted in accepted_units(metric))  # type: ignore[arg-type]


def test_particles_do_not_accept_volume_ratios() -> None:
    # PM is a mass of particles: there is no molecular weight to convert a ppb with.
    assert "ppb" not in accepted_units("pm10")
    assert "ppb" in accepted_units("so2")


def test_calibration_applies_scale_then_offset() -> None:
    assert Calibration(scale=0.92, offset=1.5).apply(100.0) == pytest.approx(93.5)
    assert Calibration().apply(4.12) == 4.12
    assert Calibration().is_identity


def test_calibration_refuses_a_zero_scale_and_non_numbers() -> None:
    with pytest.raises(ValidationError, match="scale 0"):
        Calibration(scale=0.0)
    with pytest.raises(ValidationError):
        Calibration(offset=float("nan"))
    with pytest.raises(ValidationError):
        Calibration.model_validate({"scale": 1, "gain": 2})

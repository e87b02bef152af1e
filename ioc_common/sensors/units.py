"""Unit conversion of raw sensor values to the contract's units (``event_contract.sensors.METRICS``).

Stations send levels in cm, gases in ppb, temperatures in degF; the contract stores one unit per
metric so that central's alert thresholds mean one thing. Gases convert from volume ratios (ppm, ppb)
to mass concentrations at 25 degC and 1 atm, the reference state of the Vietnamese AQI method, where
one mole of gas occupies 24.45 L. An unknown unit is refused with the accepted ones named, never guessed.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Final

from ioc_common.sensors.readings import RawMetric

MOLAR_VOLUME_L: Final = 24.45
"""Litres per mole of an ideal gas at 25 degC and 101.325 kPa."""

MOLECULAR_WEIGHT: Final[dict[str, float]] = {"co": 28.01, "no2": 46.01, "so2": 64.07, "o3": 48.00}
"""g/mol of the gases whose volume ratios (ppm, ppb) are converted to ug/m3."""

Converter = Callable[[float], float]


class UnitError(ValueError):
    """A unit that is not known for the metric; the message names it and the accepted ones."""


def _identity(value: float) -> float:
    return value


def _gas(metric: str, ug_per_m3_per_ppb: float) -> Converter:
    factor = MOLECULAR_WEIGHT[metric] / MOLAR_VOLUME_L * ug_per_m3_per_ppb
    return lambda value: value * factor


_LENGTH: dict[str, Converter] = {
    "m": _identity,
    "cm": lambda v: v / 100.0,
    "mm": lambda v: v / 1000.0,
    "ft": lambda v: v * 0.3048,
}
_TEMPERATURE: dict[str, Converter] = {
    "degC": _identity,
    "degF": lambda v: (v - 32.0) * 5.0 / 9.0,
    "K": lambda v: v - 273.15,
}
_HUMIDITY: dict[str, Converter] = {"%": _identity, "1": lambda v: v * 100.0}
_PARTICLES: dict[str, Converter] = {"ug/m3": _identity, "mg/m3": lambda v: v * 1000.0}
_PRESENCE: dict[str, Converter] = {"1": _identity, "bool": _identity, "%": lambda v: v / 100.0}
_LEVEL: dict[str, Converter] = {"level": _identity}
_NOISE: dict[str, Converter] = {"dBA": _identity}
_INDEX: dict[str, Converter] = {"index": _identity}


def _gases(metric: str) -> dict[str, Converter]:
    return {
        "ug/m3": _identity,
        "mg/m3": lambda v: v * 1000.0,
        "ppb": _gas(metric, 1.0),
        "ppm": _gas(metric, 1000.0),
    }


_BY_METRIC: Final[dict[str, dict[str, Converter]]] = {
    "water_level_m": _LENGTH,
    "distance": _LENGTH,
    "temperature_c": _TEMPERATURE,
    "humidity_pct": _HUMIDITY,
    "smoke": _PRESENCE,
    "flame": _PRESENCE,
    "fire_danger_level": _LEVEL,
    "pm2_5": _PARTICLES,
    "pm10": _PARTICLES,
    "co": _gases("co"),
    "no2": _gases("no2"),
    "so2": _gases("so2"),
    "o3": _gases("o3"),
    "noise_db": _NOISE,
    "vn_aqi": _INDEX,
}

_ALIASES: Final[dict[str, str]] = {
    # spelling -> canonical unit; keys are lower case with micro signs as 'u' and no spaces (see _canonical)
    "metre": "m",
    "meter": "m",
    "feet": "ft",
    "c": "degC",
    "°c": "degC",
    "degc": "degC",
    "cel": "degC",  # SenML (RFC 8428)
    "f": "degF",
    "°f": "degF",
    "degf": "degF",
    "k": "K",
    "%rh": "%",  # SenML
    "pct": "%",
    "percent": "%",
    "/": "1",  # SenML ratio
    "ratio": "1",
    "fraction": "1",
    "ug/m3": "ug/m3",
    "ug/m^3": "ug/m3",
    "mg/m^3": "mg/m3",
    "db": "dBA",
    "dba": "dBA",
    "db(a)": "dBA",
    "aqi": "index",
    "boolean": "bool",
}


def _canonical(unit: str) -> str:
    text = unit.strip().replace(" ", "").replace("µ", "u").replace("μ", "u").replace("³", "3")
    return _ALIASES.get(text.lower(), text)


@lru_cache(maxsize=1024)
def converter(metric: RawMetric, unit: str) -> Converter:
    """The function taking a value of ``metric`` in ``unit`` to the contract's unit; raises ``UnitError``."""
    table = _BY_METRIC[metric]
    found = table.get(unit) or table.get(_canonical(unit))
    if found is None:
        raise UnitError(f"unit {unit!r} is not known for {metric}; accepted: {', '.join(accepted_units(metric))}")
    return found


def to_si(metric: RawMetric, value: float, unit: str) -> float:
    """``value`` of ``metric`` measured in ``unit``, in the contract's unit (m, degC, %, ug/m3, ...)."""
    return converter(metric, unit)(value)


def accepted_units(metric: RawMetric) -> tuple[str, ...]:
    """The canonical units accepted for ``metric`` (aliases such as 'Cel' or '%RH' also work)."""
    return tuple(_BY_METRIC[metric])

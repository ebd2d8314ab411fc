"""Units and numbers: every stored value is in its metric's base unit, converted here once."""

import math
import re

# metric -> base unit. assets.models.Channel.BASE_UNITS says the same for the database (tests check they agree).
BASE_UNITS: dict[str, str] = {
    "energy": "Wh",  # a cumulative counter
    "power": "W",
    "voltage": "V",
    "current": "A",
    "reactive_power": "var",
    "apparent_power": "VA",
    "frequency": "Hz",
    "power_factor": "",  # dimensionless
}

# unit -> (metric it measures, factor to the base unit)
UNIT_CONVERSIONS: dict[str, tuple[str, float]] = {
    "mWh": ("energy", 0.001),  # Shelly aenergy.by_minute
    "Wh": ("energy", 1.0),
    "kWh": ("energy", 1_000.0),
    "MWh": ("energy", 1_000_000.0),
    "W": ("power", 1.0),
    "kW": ("power", 1_000.0),
    "MW": ("power", 1_000_000.0),
    "V": ("voltage", 1.0),
    "mA": ("current", 0.001),
    "A": ("current", 1.0),
    "var": ("reactive_power", 1.0),
    "kvar": ("reactive_power", 1_000.0),
    "VA": ("apparent_power", 1.0),
    "kVA": ("apparent_power", 1_000.0),
    "Hz": ("frequency", 1.0),
    "PF": ("power_factor", 1.0),
}


def units_of(metric: str) -> list[str]:
    """The units that measure `metric`, as a map or a payload may name them."""
    return [unit for unit, (measured, _) in UNIT_CONVERSIONS.items() if measured == metric]


def payload_unit_factor(raw, metric: str) -> float | None:
    """The factor to the base unit of a unit a payload names ("kWh"), or None if it is no unit of `metric`.

    Compared exactly (after trimming white space): "mWh" and "MWh" differ only in case.
    """
    if not isinstance(raw, str):
        return None
    measured, factor = UNIT_CONVERSIONS.get(raw.strip(), (None, None))
    return factor if measured == metric else None


def finite_number(raw) -> float | None:
    """The value as a float, or None for anything that is not a finite number (null, text, bool, NaN, 1e999)."""
    if isinstance(raw, bool) or not isinstance(raw, (int, float)):
        return None
    try:
        value = float(raw)
    except OverflowError:  # a JSON integer too long for a float
        return None
    return value if math.isfinite(value) else None


# Plain decimal text only: float() would also take "nan", "inf", "1_000" and non-ASCII digits.
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def number_from_text(text: str) -> float | None:
    """A decimal number written as text ('231.4', '-1350'), or None ('nan', 'None', 'unavailable', '')."""
    text = text.strip()
    if not _DECIMAL.fullmatch(text):
        return None
    value = float(text)
    return value if math.isfinite(value) else None

"""What a format reader hands back: the numbers it found, before units, sign and time are applied."""

from dataclasses import dataclass, field
from typing import NamedTuple

from .map_spec import Quantity


class RawValue(NamedTuple):
    channel_key: str
    quantity: Quantity
    number: float | None  # None: the payload held something that is not a finite number
    source: str  # where it came from, for the problem message ("ENERGY.Power", "payload", "column 3")
    shown: str  # the raw value as the device sent it, for the problem message
    unit_factor: float = 1.0  # to the base unit, when the message names the unit (the map's unit is in quantity.factor)


@dataclass
class Extracted:
    document: object  # what the timestamp path reads (None for bare-value formats)
    values: list[RawValue] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def shown(raw) -> str:
    return str(raw)[:40]

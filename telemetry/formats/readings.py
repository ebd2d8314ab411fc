"""What decoding produces, whatever the format."""

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class DecodedReading:
    channel_key: str
    metric: str
    time: datetime  # UTC
    value: float  # in the metric's base unit, sign already applied
    # True when the device sent no usable time and the message's arrival time stands in for it:
    # repeated deliveries of one message then carry different times.
    time_from_arrival: bool = False
    # For power-like metrics, what the map says the value is: "instant", "interval_average" (the mean
    # over the interval ending at `time`) or "interval_average_start" (starting at it); None when the map does not say.
    sample: str | None = None
    # For counters, the value at which the register wraps to zero, in the base unit; None if it never wraps.
    rollover: float | None = None

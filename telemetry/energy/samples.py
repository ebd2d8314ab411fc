"""The values the energy rules work on: samples in, intervals of known energy and flags out."""

from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple


# Named tuples, not dataclasses: the rules make one of each per sample, and a frozen dataclass
# costs several times more to create; they compare and hash by value, as the roll-up's diff needs.
class Sample(NamedTuple):
    time: datetime  # measurement time, aware
    value: float  # in the channel's base unit: Wh for a counter, W for power


class Interval(NamedTuple):
    """Energy known to have flowed between two instants.

    Power across it is constant (its average) unless both ends are given, and then
    it runs in a straight line between them (the trapezoid rule between two power samples).
    """

    start: datetime
    end: datetime
    energy_wh: float
    power_at_start_w: float | None = None
    power_at_end_w: float | None = None
    estimated: bool = False  # the energy is known, where in time it flowed is a guess

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()

    def power_at(self, t: datetime) -> float:
        if self.power_at_start_w is None or self.power_at_end_w is None:
            return self.energy_wh * 3600.0 / self.seconds
        share = (t - self.start).total_seconds() / self.seconds
        return self.power_at_start_w + (self.power_at_end_w - self.power_at_start_w) * share


class Flag(NamedTuple):
    """What a rule concluded about one sample; the kinds are telemetry.models.ReadingFlag.Kind."""

    time: datetime
    kind: str
    detail: str = ""


# How a channel's samples become energy: a cumulative counter, or power sampled one of three ways.
COUNTER = "counter"
INSTANT = "instant"  # power at the sample's instant: trapezoid between samples
INTERVAL_AVERAGE = "interval_average"  # the mean over the interval ending at the sample
INTERVAL_AVERAGE_START = "interval_average_start"  # the mean over the interval starting at the sample
KINDS = (COUNTER, INSTANT, INTERVAL_AVERAGE, INTERVAL_AVERAGE_START)


@dataclass(frozen=True)
class Rules:
    kind: str = COUNTER
    max_power_w: float | None = None  # plausible maximum: None checks nothing
    max_gap_s: float | None = None  # power samples further apart are not integrated; None integrates any gap
    rollover_wh: float | None = None  # a counter's declared register width: it wraps there to 0

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, not {self.kind!r}")


@dataclass
class Energy:
    """The energy rules' verdict on a run of samples."""

    intervals: list[Interval]
    flags: list[Flag]


def in_time_order(samples) -> list[Sample]:
    """One sample per measurement time (the first given stands: a repeat is the same measurement), oldest first."""
    by_time: dict[datetime, Sample] = {}
    for sample in samples:
        by_time.setdefault(sample.time, sample)
    return sorted(by_time.values(), key=lambda s: s.time)

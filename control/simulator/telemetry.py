"""What a simulated device measures, and the telemetry messages it sends about it.

A source gives each channel's power at a moment: a replayed CSV file or a load profile (base load,
a daily shape and noise). The meter turns those powers into what a real meter reports: the power
now and an energy counter that integrates it, with a load whose relay is off drawing nothing.
"""

import csv
import math
import random
import time
from bisect import bisect_right
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

# Hours of the two daily peaks of a household load and how wide each is (hours).
DAILY_PEAKS = ((7.5, 1.5), (19.0, 2.5))
MAINS_VOLTAGE = 230.0
POWER_FACTOR = 0.95


class SimulatedClock:
    """The device's time: `speed` times faster than the real one from `start` on (replaying a day in minutes)."""

    def __init__(self, start: datetime | None = None, speed: float = 1.0):
        if speed <= 0:
            raise ValueError("speed must be above 0")
        self.start = start or datetime.now(timezone.utc)
        self.speed = speed
        self._started = time.monotonic()

    def now(self) -> datetime:
        return self.start + timedelta(seconds=(time.monotonic() - self._started) * self.speed)


class LoadShape:
    """A base load, a daily shape with a morning and an evening peak, and noise; never below zero."""

    def __init__(self, base_w: float, peak_w: float = 0.0, noise_w: float = 0.0, rng: random.Random | None = None):
        self.base_w = base_w
        self.peak_w = peak_w
        self.noise_w = noise_w
        self.rng = rng or random.Random()

    def power_w(self, when: datetime) -> float:
        hour = when.hour + when.minute / 60 + when.second / 3600
        shape = max(math.exp(-(((hour - peak) / width) ** 2)) for peak, width in DAILY_PEAKS)
        noise = self.rng.gauss(0.0, self.noise_w) if self.noise_w else 0.0
        return max(0.0, self.base_w + self.peak_w * shape + noise)


class ProfileLoad:
    """The loads a profile describes, one LoadShape per channel."""

    def __init__(self, channels: dict[str, dict], seed: int | str | None = None):
        rng = random.Random(seed)
        self.shapes = {
            key: LoadShape(spec.get("base_w", 100.0), spec.get("peak_w", 0.0), spec.get("noise_w", 0.0), rng)
            for key, spec in channels.items()
        }

    @property
    def channels(self) -> list[str]:
        return list(self.shapes)

    def start_time(self) -> datetime | None:
        return None  # the real time: a load profile has no history of its own

    def powers(self, when: datetime) -> dict[str, float] | None:
        return {key: shape.power_w(when) for key, shape in self.shapes.items()}


def _parse_time(text: str) -> datetime:
    text = text.strip()
    try:
        return datetime.fromtimestamp(float(text), timezone.utc)
    except ValueError:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


class CsvReplay:
    """A CSV file with a time column (`time`, `ts` or the first; ISO 8601 or Unix seconds) and one
    column of power in W per channel, the column's name being the channel key.

    The power of a row holds until the next row; after the last row the replay is over (None), so a
    device stops sending rather than invent readings. Empty cells hold the channel at zero.
    """

    def __init__(self, path: str | Path):
        with open(path, newline="") as handle:
            reader = csv.reader(handle)
            header = [name.strip() for name in next(reader)]
            time_column = next((i for i, name in enumerate(header) if name.lower() in ("time", "ts", "timestamp")), 0)
            self.channel_columns = {name: i for i, name in enumerate(header) if i != time_column}
            rows = [row for row in reader if row and row[time_column].strip()]
        if not rows:
            raise ValueError(f"{path}: no rows")
        rows.sort(key=lambda row: _parse_time(row[time_column]))
        self.times = [_parse_time(row[time_column]) for row in rows]
        self.values = [
            {key: float(row[i]) if i < len(row) and row[i].strip() else 0.0 for key, i in self.channel_columns.items()}
            for row in rows
        ]
        # The last row's power holds for one typical row spacing, then the file is over.
        spacing = (self.times[-1] - self.times[0]) / (len(self.times) - 1) if len(self.times) > 1 else timedelta(minutes=1)
        self.end = self.times[-1] + spacing

    @property
    def channels(self) -> list[str]:
        return list(self.channel_columns)

    def start_time(self) -> datetime:
        return self.times[0]

    def powers(self, when: datetime) -> dict[str, float] | None:
        if when >= self.end:
            return None
        return dict(self.values[max(0, bisect_right(self.times, when) - 1)])


@dataclass
class Sample:
    """One reading of every channel: the power now and the energy counters (Wh)."""

    time: datetime
    power_w: dict[str, float]
    energy_wh: dict[str, float]
    period_wh: dict[str, float]
    today_wh: dict[str, float] = field(default_factory=dict)
    yesterday_wh: dict[str, float] = field(default_factory=dict)


class Meter:
    """Integrates each channel's power into an energy counter, as the device's metering chip does.

    The power of a reading holds until the next (a relay switched off between two readings stopped
    the load only when it switched, and the device takes a reading then). The counters live as long
    as the device object, as a real counter survives reboots and lost connections.
    """

    def __init__(self, channels: list[str], relay_of: dict[str, str | None]):
        self.relay_of = relay_of
        self.energy_wh = {key: 0.0 for key in channels}
        self.started_at: datetime | None = None
        self._last: Sample | None = None
        self._day = None
        self._day_start_wh = dict(self.energy_wh)
        self._yesterday_wh = {key: 0.0 for key in channels}

    def read(self, when: datetime, powers: dict[str, float], relays: dict[str, str]) -> Sample:
        if self.started_at is None:
            self.started_at = when
        power = {
            key: 0.0 if relays.get(self.relay_of.get(key) or "", "on") == "off" else powers.get(key, 0.0)
            for key in self.energy_wh
        }
        period = {key: 0.0 for key in self.energy_wh}
        if self._last is not None and when > self._last.time:
            hours = (when - self._last.time).total_seconds() / 3600
            for key in self.energy_wh:
                period[key] = self._last.power_w[key] * hours
                self.energy_wh[key] += period[key]
        if self._day != when.date():
            # A Tasmota-style day counter: yesterday's total kept, today's starts again.
            if self._day is not None:
                self._yesterday_wh = {key: self.energy_wh[key] - self._day_start_wh[key] for key in self.energy_wh}
            self._day = when.date()
            self._day_start_wh = dict(self.energy_wh)
        self._last = Sample(
            time=when,
            power_w=power,
            energy_wh=dict(self.energy_wh),
            period_wh=period,
            today_wh={key: self.energy_wh[key] - self._day_start_wh[key] for key in self.energy_wh},
            yesterday_wh=dict(self._yesterday_wh),
        )
        return self._last


def native_message(sample: Sample) -> dict:
    """IOTWATT_NATIVE (telemetry/parameter_maps.py): every channel's counter and power in one message."""
    return {
        "ts": sample.time.isoformat(),
        "channels": {
            key: {"energy_wh": round(sample.energy_wh[key], 3), "power_w": round(sample.power_w[key], 1)}
            for key in sample.power_w
        },
    }


def _electrics(power_w: float) -> dict:
    apparent = power_w / POWER_FACTOR
    return {
        "apparent": apparent,
        "reactive": math.sqrt(max(0.0, apparent**2 - power_w**2)),
        "current": apparent / MAINS_VOLTAGE,
        "factor": POWER_FACTOR if power_w else 0.0,
    }


def tasmota_sensor_message(sample: Sample, channel: str) -> dict:
    """`tele/<id>/SENSOR` of a Tasmota energy driver, as Tasmota publishes it.

    Time is the device's wall clock without offset, its zone being UTC here.
    """
    power = sample.power_w[channel]
    electrics = _electrics(power)
    return {
        "Time": sample.time.astimezone(timezone.utc).replace(tzinfo=None).isoformat(timespec="seconds"),
        "ENERGY": {
            "TotalStartTime": "2024-01-01T00:00:00",
            "Total": round(sample.energy_wh[channel] / 1000, 3),
            "Yesterday": round(sample.yesterday_wh.get(channel, 0.0) / 1000, 3),
            "Today": round(sample.today_wh.get(channel, 0.0) / 1000, 3),
            "Period": round(sample.period_wh[channel]),
            "Power": round(power),
            "ApparentPower": round(electrics["apparent"]),
            "ReactivePower": round(electrics["reactive"]),
            "Factor": round(electrics["factor"], 2),
            "Voltage": round(MAINS_VOLTAGE),
            "Current": round(electrics["current"], 3),
        },
    }


def shelly_switch_status(sample: Sample, channel: str, switch_id: int, output: bool) -> dict:
    """`<id>/status/switch:<n>` of a Shelly Gen2 metering relay, as a Shelly Plus 1PM publishes it."""
    power = sample.power_w[channel]
    electrics = _electrics(power)
    minute_mwh = round(power * 1000 / 60, 3)  # by_minute is mWh per minute
    return {
        "id": switch_id,
        "source": "init",
        "output": output,
        "apower": round(power, 1),
        "voltage": MAINS_VOLTAGE,
        "current": round(electrics["current"], 3),
        "aenergy": {
            "total": round(sample.energy_wh[channel], 3),
            "by_minute": [minute_mwh, minute_mwh, minute_mwh],
            "minute_ts": int(sample.time.timestamp()) // 60 * 60,
        },
        "temperature": {"tC": 41.0, "tF": 105.8},
    }

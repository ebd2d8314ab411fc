"""The Konstanz household's 2016 counters (OPSD) as the MQTT messages its meter would have sent."""

import csv
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

DATA_FILE = Path(__file__).parent / "data" / "opsd_DE_KN_residential1_60min_2016.csv"
COLUMN_PREFIX = "DE_KN_residential1_"
DEVICE_IDENTIFIER = "konstanz-1"
# A row's counter is read at the end of the hour that starts at utc_timestamp.
READING_DELAY = timedelta(hours=1)


@dataclass(frozen=True)
class CounterRow:
    time: datetime  # measurement time, UTC
    kwh: dict[str, str]  # channel key -> counter value as written in the file


def read_rows(path: Path = DATA_FILE) -> list[CounterRow]:
    rows = []
    with open(path, newline="") as handle:
        for record in csv.DictReader(handle):
            start = datetime.fromisoformat(record["utc_timestamp"].replace("Z", "+00:00"))
            values = {
                column.removeprefix(COLUMN_PREFIX): text
                for column, text in record.items()
                if column.startswith(COLUMN_PREFIX) and text != ""
            }
            rows.append(CounterRow(start + READING_DELAY, values))
    return rows


def channel_keys(path: Path = DATA_FILE) -> list[str]:
    with open(path, newline="") as handle:
        header = next(csv.reader(handle))
    return [column.removeprefix(COLUMN_PREFIX) for column in header if column.startswith(COLUMN_PREFIX)]


def telemetry_messages(rows: list[CounterRow], device: str = DEVICE_IDENTIFIER) -> list[tuple[str, str]]:
    """(topic, payload) in the native IotWatt format, one message per hour with every channel."""
    topic = f"iotwatt/{device}/telemetry"
    return [
        (
            topic,
            json.dumps(
                {
                    "ts": row.time.isoformat().replace("+00:00", "Z"),
                    "channels": {key: {"energy_kwh": float(text)} for key, text in row.kwh.items()},
                }
            ),
        )
        for row in rows
    ]

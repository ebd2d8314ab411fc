"""Independent figures straight from the original OPSD CSV in ../shared/data (not the product's copy).

A row's counter is the reading at the end of its hour, so the counter at instant
T is the value of the row whose utc_timestamp is T - 1 h. A local day's energy is
the counter at the next local midnight minus the counter at this one.
"""

import csv
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

SHARED_CSV = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "opsd_DE_KN_residential1_60min_2016.csv"
PREFIX = "DE_KN_residential1_"
BERLIN = ZoneInfo("Europe/Berlin")


def counters_by_instant(path: Path = SHARED_CSV) -> dict[str, dict[datetime, Decimal]]:
    series: dict[str, dict[datetime, Decimal]] = {}
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            read_at = datetime.fromisoformat(row["utc_timestamp"].replace("Z", "+00:00")) + timedelta(hours=1)
            for column, text in row.items():
                if column.startswith(PREFIX) and text:
                    series.setdefault(column.removeprefix(PREFIX), {})[read_at] = Decimal(text)
    return series


def local_midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=BERLIN).astimezone(timezone.utc)


def daily_wh(counter: dict[datetime, Decimal], first: date, last: date) -> dict[date, Decimal]:
    """Energy per local Berlin day for the days whose two midnights both have a reading."""
    result = {}
    day = first
    while day <= last:
        start, end = local_midnight(day), local_midnight(day + timedelta(days=1))
        if start in counter and end in counter:
            result[day] = (counter[end] - counter[start]) * 1000
        day += timedelta(days=1)
    return result


def daily_mismatches(channel_ids_by_key: dict[str, int], zone: str = "Europe/Berlin") -> tuple[int, list[str]]:
    """Compare the product's local-day energy of every channel with the CSV; (days checked, mismatches over 1 Wh)."""
    from telemetry.localtime import energy_by_local_period

    counters = counters_by_instant()
    checked, mismatches = 0, []
    for key, channel_id in channel_ids_by_key.items():
        got = {p.local_date: p.energy_wh for p in energy_by_local_period([channel_id], zone, "day")}
        for day, wh in daily_wh(counters[key], date(2016, 1, 1), date(2016, 12, 31)).items():
            checked += 1
            if abs(got.get(day, 0.0) - float(wh)) > 1.0:
                mismatches.append(f"{key} {day}: {got.get(day)} Wh, expected {wh} Wh")
    return checked, mismatches

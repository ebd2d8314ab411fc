"""A site with 100 channels and a year of 1-minute counter readings: time to compute every bucket, and
query time of the site's energy per local day for the year (target: under 100 ms).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/iotwatt_bench_energy .venv/bin/python bench/energy.py \
        [--channels 100] [--days 365] [--skip-load] [--runs 20] [--profile]

1. Loading: one organisation, one site in Europe/Berlin (so both DST days are in), one native
   device with `--channels` energy-counter channels, and a reading a minute on each channel for
   `--days` local days from 2025-01-01 00:00 local (365 days: 525,600 minutes, 52.56 M readings
   on 100 channels), written by binary COPY into the readings partitions, then VACUUM ANALYZE.
   The load is synthesised: a base load and a working-hours profile per channel, seasons,
   weekends, autocorrelated noise, and a few of what real meters send (outages, counter resets,
   a zero read between good ones, an implausible spike, a value repeated then caught up).
   `--skip-load` keeps the readings a previous run loaded (same `--channels` and `--days`).
2. Buckets: the buckets, days and flags are emptied, then every channel is rebuilt from its
   readings as the product's repair tool does it (telemetry.rollup.recompute_channel under the
   channel's lock, one transaction per channel). Prints the time, readings/s, where the time
   goes, and checks the buckets hold the energy of the synthesised counter steps.
3. Queries: the site's energy per local day for the year, from telemetry_energyday and, for
   comparison, straight from the 15-minute buckets grouped by local day; min/median/max over
   `--runs` runs, the EXPLAIN (ANALYZE, BUFFERS) summary of the days query, and whether the two agree.

The database must exist (createdb -h 127.0.0.1 -U postgres iotwatt_bench_energy) and hold no
devices but the bench's: the bench empties its readings, buckets, days and flags.
"""

import argparse
import cProfile
import gc
import io
import os
import pstats
import random
import statistics
import sys
import time
from collections import defaultdict
from datetime import date, datetime, timedelta, timezone
from math import cos, pi
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "iotwatt.settings")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402

from assets.models import Channel, Device, DeviceModel, Organisation, Site  # noqa: E402
from telemetry import rollup  # noqa: E402
from telemetry.channel_rules import channel_rules  # noqa: E402
from telemetry.parameter_maps import IOTWATT_NATIVE  # noqa: E402
from telemetry.partitions import ensure_partitions_for  # noqa: E402
from telemetry.storage import copy_rows  # noqa: E402

ZONE_NAME = "Europe/Berlin"
ZONE = ZoneInfo(ZONE_NAME)
YEAR = 2025
DEVICE_IDENTIFIER = "bench-energy-meter"
READING_COLUMNS = {"channel_id": "int8", "time": "timestamptz", "value": "float8"}
# One anomaly per slot of this many minutes, placed in its first half (an outage lasts at most 180 minutes):
# no two come within the rules' look-back or look-ahead of each other.
ANOMALY_SPACING = 400
SPIKE_WH = 1e9  # far beyond what any channel could draw in a minute


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--channels", type=int, default=100)
    parser.add_argument("--days", type=int, default=365, help="local days of readings from 2025-01-01")
    parser.add_argument("--skip-load", action="store_true", help="keep the readings a previous run loaded")
    parser.add_argument("--runs", type=int, default=20, help="runs of the days query (the bucket query runs a quarter as often)")
    parser.add_argument("--profile", action="store_true", help="also rebuild the first channel once more under cProfile")
    return parser.parse_args()


# --- the site -------------------------------------------------------------------------------------


def prepare_site(channels: int) -> tuple[Site, list[int]]:
    """The bench's site, device and channels, in a database that holds nothing else."""
    others = Device.objects.exclude(identifier=DEVICE_IDENTIFIER).count()
    if others:
        raise SystemExit(f"the database holds {others} devices besides the bench's: give the bench a database of its own "
                         "(createdb -h 127.0.0.1 -U postgres iotwatt_bench_energy; DATABASE_URL=.../iotwatt_bench_energy)")
    organisation, _ = Organisation.objects.get_or_create(slug="bench-energy", defaults={"name": "Bench energy"})
    site, _ = Site.objects.get_or_create(organisation=organisation, name="Bench energy site", defaults={"timezone": ZONE_NAME})
    model, _ = DeviceModel.objects.get_or_create(
        organisation=organisation, key="bench-native", defaults={"name": "Bench native meter", "parameter_map": IOTWATT_NATIVE}
    )
    device, _ = Device.objects.get_or_create(
        identifier=DEVICE_IDENTIFIER, defaults={"site": site, "device_model": model, "name": "Bench meter"}
    )
    keys = [f"c{index:03d}" for index in range(channels)]
    have = set(device.channels.values_list("key", flat=True))
    Channel.objects.bulk_create([
        Channel(device=device, key=key, metric=Channel.Metric.ENERGY, name=f"Circuit {key}", max_power_w=profile_of(index).max_power_w)
        for index, key in enumerate(keys) if key not in have
    ])
    # Channels beyond --channels (from an earlier, larger run) stay out of this run's figures.
    by_key = dict(device.channels.values_list("key", "id"))
    return site, [by_key[key] for key in keys]


# --- synthesised readings -------------------------------------------------------------------------


class Calendar:
    """Every minute of the run, once for all channels: its UTC instant, local hour of the week and local day."""

    def __init__(self, days: int):
        self.first_local_day = date(YEAR, 1, 1)
        self.start = datetime(YEAR, 1, 1, tzinfo=ZONE).astimezone(timezone.utc)
        self.end = datetime.combine(self.first_local_day + timedelta(days=days), datetime.min.time(), ZONE).astimezone(timezone.utc)
        minutes = int((self.end - self.start).total_seconds() // 60)  # 525,600 for 2025: a 23- and a 25-hour day
        self.times = [self.start + timedelta(minutes=m) for m in range(minutes)]
        self.hour_of_week, self.day_index = [], []
        for moment in self.times:
            local = moment.astimezone(ZONE)
            self.hour_of_week.append(local.weekday() * 24 + local.hour)
            self.day_index.append((local.date() - self.first_local_day).days)
        self.days = days


class ChannelProfile:
    """How one circuit draws power: a base load, a working-hours peak, weekends, seasons, noise; drawn from its index."""

    def __init__(self, index: int):
        rng = random.Random(f"profile-{index}")
        self.base_w = rng.uniform(100, 3_000)
        self.peak_w = self.base_w + rng.uniform(500, 20_000)
        # A breaker-sized plausible maximum: well above the peak, so only the injected spike exceeds it.
        self.max_power_w = round(self.peak_w * 4, -2)
        opens, closes = rng.randint(5, 9), rng.randint(16, 21)
        weekend = rng.uniform(0.0, 0.6)
        self.shape = []  # share of the span above the base load, per local hour of the week
        for day in range(7):
            for hour in range(24):
                working = opens <= hour < closes
                level = 1.0 if working else (0.35 if hour in (opens - 1, closes) else 0.05)
                self.shape.append(level * (weekend if day >= 5 else 1.0))
        self.seasonal_amplitude = rng.uniform(-0.4, 0.5)  # > 0: heating load in winter; < 0: cooling in summer
        self.noise_sigma = rng.uniform(0.01, 0.03)
        self.counter_start_wh = rng.uniform(1e5, 5e7)


_profiles: dict[int, ChannelProfile] = {}


def profile_of(index: int) -> ChannelProfile:
    if index not in _profiles:
        _profiles[index] = ChannelProfile(index)
    return _profiles[index]


def synthesise(index: int, calendar: Calendar) -> tuple[list[datetime], list[float], float]:
    """One channel's readings (times, counter values in Wh) and the energy their counter steps hold.

    The energy is what the rules must find: every step between valid readings, the value
    itself after a reset, nothing for the zero read and the spike (both invalid).
    """
    profile = profile_of(index)
    rng = random.Random(f"readings-{index}")
    season = [1.0 + profile.seasonal_amplitude * cos(2 * pi * (day - 15) / 365) for day in range(calendar.days)]
    span = profile.peak_w - profile.base_w
    shape, hour_of_week, day_index = profile.shape, calendar.hour_of_week, calendar.day_index
    base, sigma, gauss = profile.base_w, profile.noise_sigma, rng.gauss
    counter, noise = profile.counter_start_wh, 0.0
    values = []
    for minute in range(len(calendar.times)):
        noise = 0.97 * noise + gauss(0.0, sigma)
        power = (base + span * shape[hour_of_week[minute]] * season[day_index[minute]]) * (1.0 + noise)
        counter += max(power, 0.0) / 60.0
        values.append(round(counter, 1))  # the register's resolution: 0.1 Wh

    slots = list(range(1, len(values) // ANOMALY_SPACING - 1))
    rng.shuffle(slots)

    def anomaly_at() -> int:
        return slots.pop() * ANOMALY_SPACING + rng.randrange(ANOMALY_SPACING // 2)

    invalid = set()
    if rng.random() < 0.1 and slots:  # the meter restarted: counting from zero
        at = anomaly_at()
        restarted_from = values[at - 1]
        values[at:] = [round(value - restarted_from, 1) for value in values[at:]]
    for _ in range(rng.randint(0, 5) if slots else 0):  # a value repeated a few minutes, then caught up
        at = anomaly_at()
        for minute in range(at, at + rng.randint(2, 5)):
            values[minute] = values[at - 1]
    for _ in range(min(rng.randint(0, 3), len(slots))):  # a zero read between good ones
        at = anomaly_at()
        values[at] = 0.0
        invalid.add(at)
    if rng.random() < 0.2 and slots:  # a corrupt value far above anything plausible
        at = anomaly_at()
        values[at] += SPIKE_WH
        invalid.add(at)
    missing = set()
    if rng.random() < 0.3 and slots:  # an outage: nothing arrives, the counter goes on counting
        at = anomaly_at()
        missing.update(range(at, at + rng.randint(10, 180)))

    kept = [minute for minute in range(len(values)) if minute not in missing]
    counted, last = 0.0, None
    for minute in kept:
        if minute in invalid:
            continue
        value = values[minute]
        if last is not None:
            counted += value - last if value >= last else value
        last = value
    return [calendar.times[m] for m in kept], [values[m] for m in kept], counted


def load_readings(channel_ids: list[int], calendar: Calendar) -> dict:
    """Empty the bench's tables and COPY every channel's readings in, one transaction per channel."""
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE telemetry_reading, telemetry_energybucket, telemetry_energyday, telemetry_readingflag")
    ensure_partitions_for(calendar.times)
    synthesis_s = copy_s = 0.0
    readings, expected_wh = 0, 0.0
    for index, channel_id in enumerate(channel_ids):
        started = time.perf_counter()
        times, values, counted = synthesise(index, calendar)
        synthesis_s += time.perf_counter() - started
        started = time.perf_counter()
        with transaction.atomic(), connection.cursor() as cursor:
            copy_rows(cursor, "telemetry_reading", READING_COLUMNS, zip([channel_id] * len(times), times, values))
        copy_s += time.perf_counter() - started
        readings += len(times)
        expected_wh += counted
        if (index + 1) % 10 == 0 or index + 1 == len(channel_ids):
            print(f"  loaded {index + 1}/{len(channel_ids)} channels, {readings:,} readings, "
                  f"{readings / copy_s:,.0f} readings/s by COPY", flush=True)
    started = time.perf_counter()
    with connection.cursor() as cursor:
        # A freshly loaded table has no statistics or visibility map: a live one would have both.
        cursor.execute("VACUUM (ANALYZE) telemetry_reading")
    vacuum_s = time.perf_counter() - started
    return {"readings": readings, "expected_wh": expected_wh, "synthesis_s": synthesis_s, "copy_s": copy_s, "vacuum_s": vacuum_s}


def expected_energy(channel_ids: list[int], calendar: Calendar) -> tuple[int, float]:
    """For --skip-load: the synthesis again, without writing, and the loaded readings checked against it."""
    readings, expected_wh = 0, 0.0
    for index in range(len(channel_ids)):
        times, _, counted = synthesise(index, calendar)
        readings += len(times)
        expected_wh += counted
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM telemetry_reading WHERE channel_id = ANY(%s)", [channel_ids])
        stored = cursor.fetchone()[0]
    if stored != readings:
        raise SystemExit(f"--skip-load: the database holds {stored:,} readings of these channels, the synthesis makes {readings:,}: "
                         "load again (without --skip-load) or give the --channels and --days of the loaded run")
    return readings, expected_wh


# --- buckets --------------------------------------------------------------------------------------


class PhaseTimer:
    """Where recompute_channel spends its time, measured by wrapping what it calls in telemetry.rollup.

    Reading rows is the time from the channel's start to the rules' first call: the query,
    the rows fetched and turned into samples. What no wrapper covers (the stored buckets' starts,
    sorting and packing the bucket rows, the flag delete) is "other".
    """

    PHASES = ("reading rows", "rules (Python)", "spreading into buckets (Python)", "writing buckets and days", "writing flags",
              "other", "commit")

    def __init__(self):
        self.seconds = defaultdict(float)
        self.channel_started = 0.0
        self.gc_seconds, self.gc_full_collections, self._gc_started = 0.0, 0, 0.0

    def install(self) -> None:
        energy_of = rollup.energy_of

        def timed_energy_of(*args, **kwargs):
            started = time.perf_counter()
            self.seconds["reading rows"] += started - self.channel_started
            try:
                return energy_of(*args, **kwargs)
            finally:
                self.seconds["rules (Python)"] += time.perf_counter() - started

        rollup.energy_of = timed_energy_of
        rollup.spread_into_buckets = self._timed("spreading into buckets (Python)", rollup.spread_into_buckets)
        rollup.replace_buckets = self._timed("writing buckets and days", rollup.replace_buckets)
        rollup.write_flags = self._timed("writing flags", rollup.write_flags)
        gc.callbacks.append(self._on_gc)

    def _timed(self, phase: str, function):
        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds[phase] += time.perf_counter() - started
        return timed

    def _on_gc(self, stage: str, info: dict) -> None:
        if stage == "start":
            self._gc_started = time.perf_counter()
        else:
            self.gc_seconds += time.perf_counter() - self._gc_started
            self.gc_full_collections += info["generation"] == 2

    def recompute(self, channel_id: int, rules) -> int:
        """One channel in its own transaction, under its lock, as the repair tool runs it."""
        with transaction.atomic():
            rollup.lock_channels([channel_id])
            self.channel_started = time.perf_counter()
            before = sum(self.seconds.values())
            buckets = rollup.recompute_channel(channel_id, rules)
            self.seconds["other"] += time.perf_counter() - self.channel_started - (sum(self.seconds.values()) - before)
            committing = time.perf_counter()
        self.seconds["commit"] += time.perf_counter() - committing
        return buckets


def rebuild_all(channel_ids: list[int], readings: int) -> dict:
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE telemetry_energybucket, telemetry_energyday, telemetry_readingflag")
    rules = channel_rules(channel_ids)
    timer = PhaseTimer()
    timer.install()
    buckets = 0
    started = time.perf_counter()
    for done, channel_id in enumerate(channel_ids, start=1):
        buckets += timer.recompute(channel_id, rules[channel_id])
        if done % 10 == 0 or done == len(channel_ids):
            elapsed = time.perf_counter() - started
            print(f"  rebuilt {done}/{len(channel_ids)} channels in {elapsed:,.0f} s, "
                  f"about {elapsed / done * (len(channel_ids) - done):,.0f} s to go", flush=True)
    elapsed = time.perf_counter() - started
    with connection.cursor() as cursor:
        cursor.execute("SELECT kind, count(*) FROM telemetry_readingflag GROUP BY kind ORDER BY kind")
        flags = cursor.fetchall()
        cursor.execute("ANALYZE telemetry_energybucket")
        cursor.execute("ANALYZE telemetry_energyday")
    return {"seconds": elapsed, "readings_per_s": readings / elapsed, "buckets": buckets, "phases": dict(timer.seconds),
            "gc_seconds": timer.gc_seconds, "gc_full_collections": timer.gc_full_collections, "flags": flags, "rules": rules}


def profile_one_channel(channel_id: int, rules) -> None:
    """cProfile of one channel rebuilt again (over its stored buckets), the functions that hold most of the time."""
    profiler = cProfile.Profile()
    with transaction.atomic():
        rollup.lock_channels([channel_id])
        profiler.runcall(rollup.recompute_channel, channel_id, rules)
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(14)
    print("cProfile of one channel rebuilt again (the profiler's own cost inflates every figure; compare shares, not times):")
    print("\n".join(line for line in out.getvalue().splitlines() if line.strip() and not line.startswith("   Ordered by")))


# --- queries --------------------------------------------------------------------------------------

DAYS_QUERY = """
    SELECT d.day, sum(d.energy_wh), sum(d.covered_seconds)
    FROM telemetry_energyday AS d
    JOIN assets_channel AS channel ON channel.id = d.channel_id
    JOIN assets_device AS device ON device.id = channel.device_id
    WHERE device.site_id = %(site)s AND d.day >= %(first_day)s AND d.day < %(end_day)s
    GROUP BY d.day
    ORDER BY d.day
"""

# The local day of a bucket as the product cuts it when it adds buckets to days (telemetry/storage.py).
BUCKETS_QUERY = """
    SELECT (b.start AT TIME ZONE site.timezone)::date AS day, sum(b.energy_wh), sum(b.covered_seconds)
    FROM telemetry_energybucket AS b
    JOIN assets_channel AS channel ON channel.id = b.channel_id
    JOIN assets_device AS device ON device.id = channel.device_id
    JOIN assets_site AS site ON site.id = device.site_id
    WHERE site.id = %(site)s AND b.start >= %(start)s AND b.start < %(end)s
    GROUP BY 1
    ORDER BY 1
"""


def year_parameters(site: Site) -> dict:
    return {
        "site": site.pk, "first_day": date(YEAR, 1, 1), "end_day": date(YEAR + 1, 1, 1),
        "start": datetime(YEAR, 1, 1, tzinfo=ZONE), "end": datetime(YEAR + 1, 1, 1, tzinfo=ZONE),
    }


def timed_runs(sql: str, parameters: dict, runs: int) -> tuple[list[float], list[tuple]]:
    """Milliseconds of each run, from sending the query to the last row fetched; and the rows."""
    times, rows = [], []
    with connection.cursor() as cursor:
        for _ in range(runs):
            started = time.perf_counter()
            cursor.execute(sql, parameters)
            rows = cursor.fetchall()
            times.append((time.perf_counter() - started) * 1000)
    return times, rows


def explain_summary(sql: str, parameters: dict) -> list[str]:
    """The plan's top node with its actual time, its buffers, and the planning and execution times."""
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, parameters)
        lines = [row[0] for row in cursor.fetchall()]
    buffers = next((line.strip() for line in lines if line.strip().startswith("Buffers:")), "")
    return [lines[0].strip(), buffers, *[line.strip() for line in lines if line.startswith(("Planning Time", "Execution Time"))]]


def compare_days(from_days: list[tuple], from_buckets: list[tuple]) -> float:
    """The largest relative difference between the two answers' energy of a day; a day only one has counts as 1."""
    days = {day: energy for day, energy, _ in from_days}
    buckets = {day: energy for day, energy, _ in from_buckets}
    worst = 0.0
    for day in days.keys() | buckets.keys():
        if day not in days or day not in buckets:
            return 1.0
        worst = max(worst, abs(days[day] - buckets[day]) / max(abs(days[day]), abs(buckets[day]), 1e-12))
    return worst


def spread(times: list[float]) -> str:
    return f"min {min(times):.1f}  median {statistics.median(times):.1f}  max {max(times):.1f} ms"


# --- the run --------------------------------------------------------------------------------------


def main() -> None:
    args = parse_args()
    call_command("migrate", verbosity=0)
    site, channel_ids = prepare_site(args.channels)
    calendar = Calendar(args.days)
    command = (f"DATABASE_URL={os.environ.get('DATABASE_URL', '')} .venv/bin/python bench/energy.py"
               + ("" if args.channels == 100 else f" --channels {args.channels}") + ("" if args.days == 365 else f" --days {args.days}"))
    print(f"site in {ZONE_NAME}: {len(channel_ids)} energy-counter channels x {len(calendar.times):,} minutes "
          f"({args.days} local days from {YEAR}-01-01)", flush=True)

    if args.skip_load:
        print("readings: kept from an earlier run (--skip-load); synthesising again to know their energy", flush=True)
        readings, expected_wh = expected_energy(channel_ids, calendar)
        load = None
    else:
        load = load_readings(channel_ids, calendar)
        readings, expected_wh = load["readings"], load["expected_wh"]
        print(f"loaded {readings:,} readings: synthesis {load['synthesis_s']:,.0f} s, binary COPY {load['copy_s']:,.0f} s "
              f"({readings / load['copy_s']:,.0f} readings/s), VACUUM ANALYZE {load['vacuum_s']:,.0f} s", flush=True)

    print("rebuilding every channel's buckets, days and flags from its readings ...", flush=True)
    rebuild = rebuild_all(channel_ids, readings)
    phases = rebuild["phases"]
    print(f"rebuilt {len(channel_ids)} channels, {rebuild['buckets']:,} buckets, in {rebuild['seconds']:,.1f} s: "
          f"{rebuild['readings_per_s']:,.0f} readings/s, {rebuild['seconds'] / len(channel_ids):.1f} s a channel")
    for phase in PhaseTimer.PHASES:
        print(f"  {phase:<34}{phases.get(phase, 0.0):>9,.1f} s  {phases.get(phase, 0.0) / rebuild['seconds']:>5.0%}")
    print(f"  of which Python's cyclic garbage collector: {rebuild['gc_seconds']:,.1f} s "
          f"({rebuild['gc_full_collections']} full collections)")
    print("  flags: " + (", ".join(f"{kind} {count}" for kind, count in rebuild["flags"]) or "none"))

    parameters = year_parameters(site)
    days_times, from_days = timed_runs(DAYS_QUERY, parameters, args.runs)
    bucket_times, from_buckets = timed_runs(BUCKETS_QUERY, parameters, max(3, args.runs // 4))
    explained = explain_summary(DAYS_QUERY, parameters)
    worst = compare_days(from_days, from_buckets)
    total_wh = sum(energy for _, energy, _ in from_days)
    energy_error = abs(total_wh - expected_wh) / expected_wh
    hours = {day: covered / len(channel_ids) / 3600 for day, _, covered in from_days}
    dst_days = [day for day in (date(YEAR, 3, 30), date(YEAR, 10, 26)) if day in hours]
    print(f"energy per local day of the site ({len(from_days)} days):")
    print(f"  from telemetry_energyday  ({len(days_times)} runs): {spread(days_times)}")
    print(f"  from the 15-minute buckets ({len(bucket_times)} runs): {spread(bucket_times)}")
    print("  EXPLAIN (ANALYZE, BUFFERS) of the days query: " + " | ".join(explained))
    print(f"  the two agree within {worst:.1e} relative on every day" + ("" if worst <= 1e-6 else "  <-- MORE THAN 1e-6"))
    print("  DST days, hours covered per channel: " + (", ".join(f"{day} {hours[day]:.2f} h" for day in dst_days) or "none in range"))
    print(f"  year total {total_wh / 1000:,.1f} kWh; the synthesised counter steps hold {expected_wh / 1000:,.1f} kWh "
          f"({energy_error:.1e} relative)" + ("" if energy_error <= 1e-6 else "  <-- MORE THAN 1e-6"))

    if args.profile:
        profile_one_channel(channel_ids[0], rebuild["rules"][channel_ids[0]])

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_size_pretty(pg_database_size(current_database()))")
        size = cursor.fetchone()[0]
    target = "met" if statistics.median(days_times) < 100 else "NOT met"
    print()
    print(f"== bench/energy.py: {len(channel_ids)} channels x {len(calendar.times):,} minutes, {ZONE_NAME}, database {size} ==")
    if load:
        print(f"load      {readings:,} readings by binary COPY in {load['copy_s']:,.0f} s ({readings / load['copy_s']:,.0f} readings/s); "
              f"synthesis {load['synthesis_s']:,.0f} s, VACUUM ANALYZE {load['vacuum_s']:,.0f} s")
    else:
        print(f"load      skipped: {readings:,} readings kept from an earlier run")
    print(f"buckets   {rebuild['seconds']:,.0f} s for all channels ({rebuild['readings_per_s']:,.0f} readings/s, "
          f"{rebuild['seconds'] / len(channel_ids):.1f} s a channel); "
          + ", ".join(f"{phase} {phases.get(phase, 0.0) / rebuild['seconds']:.0%}" for phase in PhaseTimer.PHASES))
    print(f"query     site energy per local day for {YEAR} from telemetry_energyday: median {statistics.median(days_times):.1f} ms "
          f"({spread(days_times)}); target under 100 ms {target}")
    print(f"          the same from the 15-minute buckets: median {statistics.median(bucket_times):.0f} ms ({spread(bucket_times)})")
    print(f"check     {len(from_days)} days agree within {worst:.1e}; year total {total_wh / 1000:,.1f} kWh "
          f"= synthesised {expected_wh / 1000:,.1f} kWh ({energy_error:.1e})")
    print(f"command   {command}")


if __name__ == "__main__":
    main()

"""The counter and power cases of energy-cases.md, through ingest into PostgreSQL, and more of each kind.

Each case is fed as a device publishes it, and the answer is read from what the product
stores: buckets, days and reading flags. E01, E06, E07 and E11–E15 (local periods) are in
tests/test_local_periods.py; E09, E10 and E16 (units and prices) in tests/test_payload_units.py
and tests/test_tariffs.py. Expected values are the cases' own.
"""

import json
import random
from datetime import date, datetime, timedelta, timezone

import pytest
from django.db import connection

from assets.models import Channel, DeviceModel
from telemetry.channel_rules import channel_rules
from telemetry.ingest import ingest_messages
from telemetry.models import DeadLetter, EnergyBucket, EnergyDay, Reading, ReadingFlag
from telemetry.parameter_maps import IOTWATT_NATIVE
from telemetry.rollup import recompute_channel

from .test_local_periods import make_channel

pytestmark = pytest.mark.django_db


def native(device: str, ts: str, quantity: str, value, key: str = "main", received_at: str | None = None) -> dict:
    payload = json.dumps({"ts": ts, "channels": {key: {quantity: value}}})
    return {"topic": f"iotwatt/{device}/telemetry", "payload": payload, "received_at": received_at or ts}


def counter(zone: str, device: str, **limits) -> Channel:
    channel = make_channel(zone, device=device)
    Channel.objects.filter(pk=channel.pk).update(**limits)
    return channel


def power_channel(zone: str, device: str, **limits) -> Channel:
    channel = make_channel(zone, device=device)
    Channel.objects.filter(pk=channel.pk).update(metric=Channel.Metric.POWER, **limits)
    return Channel.objects.get(pk=channel.pk)


def total_wh(channel: Channel) -> float:
    return sum(EnergyBucket.objects.filter(channel=channel).values_list("energy_wh", flat=True))


def day_wh(channel: Channel, day: date) -> float:
    return EnergyDay.objects.get(channel=channel, day=day).energy_wh


def flags(channel: Channel) -> dict[str, str]:
    return {f.time.isoformat(): f.kind for f in ReadingFlag.objects.filter(channel=channel)}


def assert_same_as_recomputed(channel: Channel) -> None:
    """The incremental buckets equal the rules applied to every stored reading at once."""
    kept = sorted(EnergyBucket.objects.filter(channel=channel).values_list("start", "energy_wh", "covered_seconds", "estimated_wh"))
    kept_flags = flags(channel)
    recompute_channel(channel.pk, channel_rules([channel.pk])[channel.pk])
    again = sorted(EnergyBucket.objects.filter(channel=channel).values_list("start", "energy_wh", "covered_seconds", "estimated_wh"))
    assert [row[0] for row in kept if any(row[1:])] == [row[0] for row in again if any(row[1:])]
    for mine, theirs in zip([r for r in kept if any(r[1:])], [r for r in again if any(r[1:])]):
        assert mine[1:] == pytest.approx(theirs[1:], abs=1e-6)
    assert flags(channel) == kept_flags


# E02: a transient 0 (or "unavailable" read as 0) between good readings


E02 = [
    ("2024-01-20T10:00:00+01:00", 15508.40),
    ("2024-01-20T10:00:10+01:00", 15508.42),
    ("2024-01-20T10:00:20+01:00", 0.00),
    ("2024-01-20T10:00:30+01:00", 15508.45),
    ("2024-01-20T10:00:40+01:00", 15508.47),
]


def test_e02_a_zero_between_good_readings_is_a_glitch_not_15_mwh():
    channel = counter("Europe/Zurich", "e02")
    ingest_messages([native("e02", ts, "energy_kwh", v) for ts, v in E02])

    assert total_wh(channel) == pytest.approx(70.0, abs=1e-6)  # 0.07 kWh
    assert flags(channel) == {"2024-01-20T09:00:20+00:00": "glitch"}


def test_e02_the_glitch_found_only_when_the_next_reading_arrives_later():
    channel = counter("Europe/Zurich", "e02-late")
    for ts, v in E02:  # one message a batch: the 0 is a reset until the recovery shows it was not
        ingest_messages([native("e02-late", ts, "energy_kwh", v)])

    assert total_wh(channel) == pytest.approx(70.0, abs=1e-6)
    assert flags(channel) == {"2024-01-20T09:00:20+00:00": "glitch"}
    assert_same_as_recomputed(channel)


@pytest.mark.parametrize("bad", [0.0, 0.001, 15000.0])
def test_a_run_of_bad_values_that_comes_back_is_a_glitch_of_each(bad):
    channel = counter("Europe/Zurich", f"glitch-{bad}")
    readings = [("2024-01-20T10:00:00+01:00", 15508.40), ("2024-01-20T10:00:10+01:00", bad),
                ("2024-01-20T10:00:20+01:00", bad), ("2024-01-20T10:00:30+01:00", 15508.45)]
    ingest_messages([native(f"glitch-{bad}", ts, "energy_kwh", v) for ts, v in readings])

    assert total_wh(channel) == pytest.approx(50.0, abs=1e-6)
    assert sorted(flags(channel).values()) == ["glitch", "glitch"]


def test_an_upward_outlier_that_comes_straight_back_is_a_glitch():
    channel = counter("Europe/Zurich", "outlier")
    readings = [("2024-01-20T10:00:00+01:00", 100.0), ("2024-01-20T10:01:00+01:00", 100.1),
                ("2024-01-20T10:02:00+01:00", 180.0), ("2024-01-20T10:03:00+01:00", 100.3)]
    ingest_messages([native("outlier", ts, "energy_kwh", v) for ts, v in readings])

    assert total_wh(channel) == pytest.approx(300.0, abs=1e-6)
    assert flags(channel) == {"2024-01-20T09:02:00+00:00": "glitch"}


# E03: a register of a known width wraps round


def rollover_model(width_wh: float) -> DeviceModel:
    parameter_map = json.loads(json.dumps(IOTWATT_NATIVE))
    parameter_map["quantities"]["energy_wh"]["rollover"] = width_wh
    return DeviceModel.objects.create(key=f"wrapping-{width_wh}", name="Meter with a 23-bit register", parameter_map=parameter_map)


def test_e03_a_wrap_at_the_declared_width_counts_the_step_across_it():
    channel = counter("Europe/Berlin", "e03")
    channel.device.device_model = rollover_model(838860.8)
    channel.device.save()
    readings = [("2022-10-03T22:25:38Z", 838831.0), ("2022-10-03T22:28:20Z", 838857.6),
                ("2022-10-03T22:31:00Z", 12.4), ("2022-10-03T22:33:40Z", 40.1)]
    ingest_messages([native("e03", ts, "energy_wh", v) for ts, v in readings])

    assert total_wh(channel) == pytest.approx(69.9, abs=1e-6)  # 26.6 + 15.6 + 27.7
    assert flags(channel) == {"2022-10-03T22:31:00+00:00": "rollover"}
    assert_same_as_recomputed(channel)


def test_without_a_declared_width_the_same_drop_is_a_reset():
    channel = counter("Europe/Berlin", "e03-reset")
    readings = [("2022-10-03T22:25:38Z", 838831.0), ("2022-10-03T22:28:20Z", 838857.6),
                ("2022-10-03T22:31:00Z", 12.4), ("2022-10-03T22:33:40Z", 40.1)]
    ingest_messages([native("e03-reset", ts, "energy_wh", v) for ts, v in readings])

    assert total_wh(channel) == pytest.approx(66.7, abs=1e-6)
    assert flags(channel) == {"2022-10-03T22:31:00+00:00": "reset"}


# E04: a null between counter readings


def test_e04_a_null_reading_is_not_zero_and_the_counter_carries_the_energy_across_the_gap():
    channel = counter("Europe/Helsinki", "e04")
    readings = [("2023-03-08T17:00:00+02:00", 50.44), ("2023-03-08T17:10:00+02:00", 50.53),
                ("2023-03-08T17:20:00+02:00", None), ("2023-03-08T17:40:00+02:00", 50.89),
                ("2023-03-08T17:50:00+02:00", 50.98)]
    ingest_messages([native("e04", ts, "energy_kwh", v) for ts, v in readings])

    assert total_wh(channel) == pytest.approx(540.0, abs=1e-6)
    assert Reading.objects.filter(channel=channel).count() == 4
    assert DeadLetter.objects.filter(topic="iotwatt/e04/telemetry").count() == 1


# E05: a 50-minute outage in a power series


E05 = [("2022-05-01T14:00:00+01:00", 80), ("2022-05-01T14:00:10+01:00", 80),
       ("2022-05-01T14:50:10+01:00", 2400), ("2022-05-01T14:50:20+01:00", 2400)]


def test_e05_power_is_not_integrated_across_a_gap_longer_than_the_channels_maximum():
    channel = power_channel("Europe/London", "e05", max_gap_s=60)
    ingest_messages([native("e05", ts, "power_w", v) for ts, v in E05])

    assert total_wh(channel) == pytest.approx((80 * 10 + 2400 * 10) / 3600, abs=1e-9)  # 6.89 Wh
    covered = sum(EnergyBucket.objects.filter(channel=channel).values_list("covered_seconds", flat=True))
    assert covered == pytest.approx(20.0)  # the 50 minutes are unknown, not filled


def test_e05_with_a_longer_maximum_gap_the_same_samples_are_integrated_by_trapezoid():
    channel = power_channel("Europe/London", "e05-wide", max_gap_s=3600)
    ingest_messages([native("e05-wide", ts, "power_w", v) for ts, v in E05])

    assert total_wh(channel) == pytest.approx((800 + (80 + 2400) / 2 * 3000 + 24000) / 3600, abs=1e-9)


def test_a_power_bucket_keeps_min_average_and_max_power():
    channel = power_channel("Europe/London", "minmax")
    samples = [("2022-05-01T14:00:00+01:00", 100), ("2022-05-01T14:05:00+01:00", 400), ("2022-05-01T14:10:00+01:00", 200),
               ("2022-05-01T14:15:00+01:00", 200)]
    ingest_messages([native("minmax", ts, "power_w", v) for ts, v in samples])

    bucket = EnergyBucket.objects.get(channel=channel)
    assert (bucket.min_power_w, bucket.max_power_w) == (100, 400)
    assert bucket.avg_power_w == pytest.approx((250 * 300 + 300 * 300 + 200 * 300) / 900)
    assert bucket.coverage == 1.0


def test_a_power_sample_above_the_plausible_maximum_is_refused_and_flagged():
    channel = power_channel("Europe/London", "too-high", max_power_w=10_000)
    samples = [("2022-05-01T14:00:00+01:00", 1000), ("2022-05-01T14:00:10+01:00", 4_000_000), ("2022-05-01T14:00:20+01:00", 1000)]
    ingest_messages([native("too-high", ts, "power_w", v) for ts, v in samples])

    assert total_wh(channel) == pytest.approx(1000 * 20 / 3600)
    assert flags(channel) == {"2022-05-01T13:00:10+00:00": "out_of_range"}


# E06: duplicated messages of power


def test_e06_power_repeated_by_the_broker_is_integrated_by_timestamps_not_messages():
    channel = power_channel("Europe/Oslo", "e06")
    times = ["2024-02-01T12:00:00+01:00", "2024-02-01T12:00:10+01:00", "2024-02-01T12:00:10+01:00",
             "2024-02-01T12:00:20+01:00", "2024-02-01T12:00:30+01:00"]
    ingest_messages([native("e06", ts, "power_w", 3600) for ts in times])

    assert Reading.objects.filter(channel=channel).count() == 4
    assert total_wh(channel) == pytest.approx(30.0)


# E08: large running totals must not lose small steps


def test_e08_small_steps_on_a_large_total_all_count():
    channel = counter("Europe/Berlin", "e08")
    start = datetime(2024, 1, 1, tzinfo=timezone.utc)
    readings = [((start + timedelta(seconds=k)).isoformat(), 8192.0 + k / 3600) for k in range(3601)]
    for i in range(0, len(readings), 600):
        ingest_messages([native("e08", ts, "energy_wh", v) for ts, v in readings[i:i + 600]])

    assert total_wh(channel) == pytest.approx(1.0, abs=1e-6)  # 8192.0 -> 8193.0 Wh
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_name IN ('telemetry_reading', 'telemetry_energybucket', 'telemetry_energyday') AND data_type = 'real'"
        )
        assert cursor.fetchall() == []  # no float4 anywhere energy is kept


# Spikes, jumps, jitter and stale values


def test_a_step_above_the_plausible_power_is_a_spike_and_the_counter_goes_on():
    channel = counter("Europe/Berlin", "spike", max_power_w=20_000)
    readings = [("2024-01-01T00:00:00Z", 100.0), ("2024-01-01T00:01:00Z", 100.1),
                ("2024-01-01T00:02:00Z", 999.0), ("2024-01-01T00:03:00Z", 100.3)]
    ingest_messages([native("spike", ts, "energy_kwh", v) for ts, v in readings])

    assert total_wh(channel) == pytest.approx(300.0, abs=1e-6)
    assert flags(channel) == {"2024-01-01T00:02:00+00:00": "spike"}


def test_an_honest_catch_up_after_an_outage_is_not_a_spike():
    channel = counter("Europe/Berlin", "catch-up", max_power_w=20_000)
    readings = [("2024-01-01T00:00:00Z", 100.0), ("2024-01-01T00:01:00Z", 100.1),
                ("2024-01-01T06:01:00Z", 160.1), ("2024-01-01T06:02:00Z", 160.2)]  # 60 kWh in 6 h = 10 kW
    ingest_messages([native("catch-up", ts, "energy_kwh", v) for ts, v in readings])

    assert total_wh(channel) == pytest.approx(60_200.0, abs=1e-6)
    assert flags(channel) == {}


def test_a_jump_the_counter_goes_on_from_is_not_counted():
    channel = counter("Europe/Berlin", "jump", max_power_w=20_000)
    readings = [("2024-01-01T00:00:00Z", 100.0), ("2024-01-01T00:01:00Z", 100.1),
                ("2024-01-01T00:02:00Z", 5000.0), ("2024-01-01T00:03:00Z", 5000.1)]  # a meter swapped
    ingest_messages([native("jump", ts, "energy_kwh", v) for ts, v in readings])

    assert total_wh(channel) == pytest.approx(200.0, abs=1e-6)
    assert flags(channel) == {"2024-01-01T00:02:00+00:00": "jump"}


def test_jitter_below_the_highest_value_is_never_counted_twice():
    channel = counter("Europe/Berlin", "jitter")
    readings = [("2024-01-01T00:00:00Z", 1000.000), ("2024-01-01T00:01:00Z", 1000.010), ("2024-01-01T00:02:00Z", 1000.005),
                ("2024-01-01T00:03:00Z", 1000.010), ("2024-01-01T00:04:00Z", 1000.020)]
    ingest_messages([native("jitter", ts, "energy_kwh", v) for ts, v in readings])

    assert total_wh(channel) == pytest.approx(20.0, abs=1e-6)  # 1000.000 -> 1000.020, the wobble once
    assert flags(channel) == {"2024-01-01T00:02:00+00:00": "jitter"}


def test_a_stale_value_then_a_double_step_is_spread_over_both_intervals_as_estimated():
    channel = counter("Europe/Berlin", "stale")
    readings = [("2024-01-01T00:00:00Z", 10.0), ("2024-01-01T00:10:00Z", 11.0), ("2024-01-01T00:20:00Z", 11.0),
                ("2024-01-01T00:30:00Z", 13.0)]
    ingest_messages([native("stale", ts, "energy_kwh", v) for ts, v in readings])

    buckets = {b.start.isoformat(): b for b in EnergyBucket.objects.filter(channel=channel)}
    # 1 kWh per 10 minutes throughout: the 00:15 bucket gets 00:15-00:30 = 1.5 kWh, all of it estimated.
    assert buckets["2024-01-01T00:15:00+00:00"].energy_wh == pytest.approx(1500.0)
    assert buckets["2024-01-01T00:15:00+00:00"].estimated_wh == pytest.approx(1500.0)
    assert buckets["2024-01-01T00:00:00+00:00"].estimated_wh == pytest.approx(500.0)
    assert flags(channel) == {"2024-01-01T00:30:00+00:00": "stale"}


def test_a_flat_counter_that_then_rises_a_little_is_a_real_plateau_not_stale():
    channel = counter("Europe/Berlin", "plateau")
    readings = [("2024-01-01T00:00:00Z", 10.0), ("2024-01-01T00:10:00Z", 11.0), ("2024-01-01T00:20:00Z", 11.0),
                ("2024-01-01T00:30:00Z", 11.1)]
    ingest_messages([native("plateau", ts, "energy_kwh", v) for ts, v in readings])

    assert EnergyBucket.objects.filter(channel=channel, estimated_wh__gt=0).count() == 0
    assert flags(channel) == {}


# Every kind at once, in any order: the stored result is the rules applied to the whole stream


@pytest.mark.parametrize("seed", range(4))
def test_faults_delivered_shuffled_in_batches_equal_a_recomputation(seed):
    rng = random.Random(seed)
    channel = counter("Europe/Berlin", f"mixed-{seed}", max_power_w=50_000)
    time, value, readings = datetime(2024, 3, 30, 20, tzinfo=timezone.utc), 5000.0, []
    for _ in range(150):
        time += timedelta(seconds=rng.choice([10, 60, 300, 900]))
        event = rng.random()
        if event < 0.05:
            readings.append((time.isoformat(), 0.0))  # glitch
            time += timedelta(seconds=10)
        elif event < 0.08:
            value = 0.5  # reset
        elif event < 0.1:
            readings.append((time.isoformat(), value + 1e6))  # spike
            time += timedelta(seconds=10)
        value += rng.uniform(0, 2)
        readings.append((time.isoformat(), round(value, 3)))
    deliveries = readings + rng.sample(readings, 30)
    rng.shuffle(deliveries)
    for i in range(0, len(deliveries), 17):
        ingest_messages([native(f"mixed-{seed}", ts, "energy_wh", v) for ts, v in deliveries[i:i + 17]])

    assert ReadingFlag.objects.filter(channel=channel).exists()
    assert_same_as_recomputed(channel)
    days = dict(EnergyDay.objects.filter(channel=channel).values_list("day", "energy_wh"))
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT (start AT TIME ZONE 'Europe/Berlin')::date, sum(energy_wh) FROM telemetry_energybucket WHERE channel_id = %s GROUP BY 1",
            [channel.pk],
        )
        for day, energy in cursor.fetchall():
            assert days[day] == pytest.approx(energy, abs=1e-6)


# Changing a channel's limits rebuilds its energy


def test_a_new_maximum_gap_rebuilds_the_channels_energy(django_capture_on_commit_callbacks):
    from telemetry.tasks import rebuild_channel_energy

    channel = power_channel("Europe/London", "regap", max_gap_s=60)
    ingest_messages([native("regap", ts, "power_w", v) for ts, v in E05])
    assert total_wh(channel) == pytest.approx(24800 / 3600)

    with django_capture_on_commit_callbacks() as callbacks:
        channel.max_gap_s = 3600
        channel.save()
    assert len(callbacks) == 1  # the rebuild is queued once the change is committed
    rebuild_channel_energy(channel.pk)  # what the worker runs

    assert total_wh(channel) == pytest.approx((800 + (80 + 2400) / 2 * 3000 + 24000) / 3600)


def test_renaming_a_channel_queues_no_rebuild(django_capture_on_commit_callbacks):
    channel = power_channel("Europe/London", "rename")
    with django_capture_on_commit_callbacks() as callbacks:
        channel.name = "Chiller"
        channel.save()
    assert callbacks == []


def test_the_recompute_command_rebuilds_a_sites_channels_and_says_how_far_it_got():
    from io import StringIO

    from django.core.management import call_command
    from django.core.management.base import CommandError

    channel = counter("Europe/Zurich", "recompute")
    ingest_messages([native("recompute", ts, "energy_kwh", v) for ts, v in E02])
    EnergyBucket.objects.filter(channel=channel).delete()
    EnergyDay.objects.filter(channel=channel).update(energy_wh=0)
    out = StringIO()

    call_command("recompute_energy", "--site", str(channel.device.site_id), stdout=out)

    assert total_wh(channel) == pytest.approx(70.0, abs=1e-6)
    assert day_wh(channel, date(2024, 1, 20)) == pytest.approx(70.0, abs=1e-6)
    assert "[1/1]" in out.getvalue() and "Rebuilt 1 channel(s)" in out.getvalue()
    with pytest.raises(CommandError, match="Say which channels"):
        call_command("recompute_energy")
    with pytest.raises(CommandError, match="No energy or power channel with id 999999"):
        call_command("recompute_energy", "--channel", "999999")


def test_a_pv_counter_flat_all_night_is_not_stale_when_the_sun_comes_up():
    # Konstanz PV, 2016-06-30 21:00 to 2016-07-01 06:00 local: eight hours of one value, then the morning.
    channel = counter("Europe/Berlin", "pv-night")
    values = [11185.136, 11185.155] + [11185.155] * 8 + [11185.4]
    start = datetime(2016, 6, 30, 18, tzinfo=timezone.utc)
    ingest_messages([native("pv-night", (start + timedelta(hours=k)).isoformat(), "energy_kwh", v) for k, v in enumerate(values)])

    assert EnergyBucket.objects.filter(channel=channel, estimated_wh__gt=0).count() == 0
    morning = EnergyBucket.objects.filter(channel=channel, start__gte=start + timedelta(hours=9), energy_wh__gt=0)
    assert sum(b.energy_wh for b in morning) == pytest.approx(245.0, abs=1e-6)  # all in the last hour
    assert flags(channel) == {}


def test_the_channel_admin_page_shows_what_the_rules_noticed(admin_client):
    channel = counter("Europe/Zurich", "flags-shown")
    ingest_messages([native("flags-shown", ts, "energy_kwh", v) for ts, v in E02])

    page = admin_client.get(f"/admin/assets/channel/{channel.pk}/change/").content.decode()

    assert "Invalid: the counter left its course and came straight back" in page  # the glitch's kind, as operators read it
    assert "dropped from 1.55084e+07 and came back" in page


# E07 with the device's own "today" counter, as the case gives it


def test_e07_a_today_counter_late_across_midnight_is_booked_by_measurement_time():
    channel = counter("Europe/London", "e07-today")
    arrivals = [
        ("2025-07-08T00:00:00+01:00", 0.00, "2025-07-08T00:00:01+01:00"),  # a "today" counter starts its day at 0
        ("2025-07-08T23:59:50+01:00", 18.20, "2025-07-08T23:59:50+01:00"),
        ("2025-07-09T00:00:10+01:00", 0.01, "2025-07-09T00:00:12+01:00"),
        ("2025-07-09T00:00:20+01:00", 0.03, "2025-07-09T00:00:22+01:00"),
        ("2025-07-08T23:59:59+01:00", 18.21, "2025-07-09T00:00:02+01:00"),  # arrives after midnight, measured before
    ]
    for ts, value, received_at in arrivals:
        ingest_messages([native("e07-today", ts, "energy_kwh", value, received_at=received_at)])

    # The device's reset at midnight is a counter reset: its first 0.01 kWh is spread over the 11 s
    # between 23:59:59 and 00:00:10, so 1/11 of it (0.9 Wh) lands on the 8th.
    assert day_wh(channel, date(2025, 7, 8)) == pytest.approx(18_210.0, abs=1.0)
    assert day_wh(channel, date(2025, 7, 9)) == pytest.approx(30.0, abs=1.0)
    assert flags(channel) == {"2025-07-08T23:00:10+00:00": "reset"}


# Kinds found by trying to break the rules


def test_an_honest_catch_up_after_a_value_held_for_an_hour_is_counted_with_a_realistic_maximum():
    channel = counter("Europe/Berlin", "held-hour", max_power_w=20_000)
    start = datetime(2024, 1, 1, tzinfo=timezone.utc)
    readings = [(start, 100.0), (start + timedelta(seconds=10), 100.04)]
    readings += [(start + timedelta(seconds=20 + 10 * k), 100.04) for k in range(360)]  # the register froze for an hour
    readings += [(start + timedelta(seconds=3630), 103.04)]  # 3 kWh: 3 kW over the hour, 1 MW over its own 10 s
    for i in range(0, len(readings), 50):
        ingest_messages([native("held-hour", t.isoformat(), "energy_kwh", v) for t, v in readings[i:i + 50]])

    assert total_wh(channel) == pytest.approx(3040.0, abs=1e-6)
    assert flags(channel) == {(start + timedelta(seconds=3630)).isoformat(): "stale"}
    assert_same_as_recomputed(channel)


@pytest.mark.parametrize("bad_reads", [1, 3, 4, 5])
def test_a_run_of_zeros_then_the_old_value_books_no_lifetime(bad_reads):
    channel = counter("Europe/Zurich", f"zeros-{bad_reads}")
    start = datetime(2024, 1, 20, 9, tzinfo=timezone.utc)
    values = [1520.40, 1520.50] + [0.0] * bad_reads + [1520.60, 1520.70]
    ingest_messages([native(f"zeros-{bad_reads}", (start + timedelta(minutes=10 * k)).isoformat(), "energy_kwh", v)
                     for k, v in enumerate(values)])

    assert total_wh(channel) == pytest.approx(300.0, abs=1e-6)
    assert_same_as_recomputed(channel)


def test_a_run_of_zeros_longer_than_the_memory_is_a_jump_under_a_realistic_maximum():
    # Beyond the rules' memory the level before the zeros is forgotten: the return to it is judged by the
    # channel's plausible maximum, and 1.5 MWh in the hour the memory spans is more than 100 kW allows.
    channel = counter("Europe/Zurich", "zeros-long", max_power_w=100_000)
    start = datetime(2024, 1, 20, 9, tzinfo=timezone.utc)
    values = [1520.40, 1520.50] + [0.0] * 8 + [1520.60, 1520.70]
    ingest_messages([native("zeros-long", (start + timedelta(minutes=10 * k)).isoformat(), "energy_kwh", v)
                     for k, v in enumerate(values)])

    assert total_wh(channel) == pytest.approx(200.0, abs=1e-6)  # the hour of bad reads is unknown, not a lifetime
    assert sorted(flags(channel).values()) == ["jump", "reset"]
    assert_same_as_recomputed(channel)


@pytest.mark.parametrize("invalid_run", [20, 40])
def test_a_long_run_of_implausible_power_then_a_late_batch_equals_a_recomputation(invalid_run):
    channel = power_channel("Europe/Berlin", f"run-{invalid_run}", max_power_w=1000)
    start = datetime(2024, 1, 1, tzinfo=timezone.utc)
    samples = [(start, 500.0)] + [(start + timedelta(seconds=k + 1), 5000.0) for k in range(invalid_run)]
    ingest_messages([native(f"run-{invalid_run}", t.isoformat(), "power_w", v) for t, v in samples])
    ingest_messages([native(f"run-{invalid_run}", (start + timedelta(seconds=invalid_run + 1)).isoformat(), "power_w", 500.0)])

    assert total_wh(channel) == pytest.approx(500.0 * (invalid_run + 1) / 3600)
    assert_same_as_recomputed(channel)


def test_a_new_rollover_in_the_device_models_map_rebuilds_its_channels(django_capture_on_commit_callbacks):
    from telemetry.tasks import rebuild_channel_energy

    channel = counter("Europe/Berlin", "remap")
    model = rollover_model(10_000_000.0)  # a width that never wraps these values
    channel.device.device_model = model
    channel.device.save()
    readings = [("2022-10-03T22:25:38Z", 838831.0), ("2022-10-03T22:28:20Z", 838857.6),
                ("2022-10-03T22:31:00Z", 12.4), ("2022-10-03T22:33:40Z", 40.1)]
    ingest_messages([native("remap", ts, "energy_wh", v) for ts, v in readings])
    assert total_wh(channel) == pytest.approx(66.7, abs=1e-6)  # a reset

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        model.parameter_map["quantities"]["energy_wh"]["rollover"] = 838860.8
        model.save()
    assert len(callbacks) == 1
    rebuild_channel_energy(channel.pk)  # what the queued task runs

    assert total_wh(channel) == pytest.approx(69.9, abs=1e-6)  # now a wrap

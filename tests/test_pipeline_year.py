"""A year of real meter readings through Mosquitto, the bridge and a Celery worker, checked day by day."""

from datetime import date, timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import connection

from assets.models import Asset, Channel, Device
from iotwatt.demo.household import create_demo_household
from iotwatt.demo.opsd import channel_keys, read_rows, telemetry_messages
from iotwatt.demo.publish import publish_all
from telemetry.asset_energy import asset_energy
from telemetry.localtime import energy_by_local_period
from telemetry.models import EnergyBucket, Reading

from .opsd_expected import counters_by_instant, daily_mismatches, local_midnight
from .pipeline import Pipeline, wait_until

pytestmark = [pytest.mark.pipeline, pytest.mark.django_db]

ZONE = "Europe/Berlin"


@pytest.fixture(scope="module")
def year(django_db_setup, django_db_blocker, mosquitto, redis_url, tmp_path_factory):
    """The demo household with all of 2016 ingested through the real pipeline (left running for the module)."""
    with django_db_blocker.unblock():
        site = create_demo_household(channel_keys())
        # A second device whose one reading, published last, tells when every repeat before it is committed.
        marker_device = Device.objects.create(
            site=site, device_model=Device.objects.get(identifier="konstanz-1").device_model, identifier="marker-1"
        )
        marker = Channel.objects.create(device=marker_device, key="marker", metric=Channel.Metric.ENERGY)
        rows = read_rows()
        messages = telemetry_messages(rows)
        expected_readings = sum(len(row.kwh) for row in rows)
        pipeline = Pipeline(tmp_path_factory.mktemp("year"), mosquitto.url, redis_url).start()
        try:
            publish_all(mosquitto.url, "5", messages, "test-year-meter", progress=False)
            wait_until(lambda: Reading.objects.count() == expected_readings, 300, f"{expected_readings} readings")
            channels = {c.key: c.id for c in Channel.objects.filter(device__identifier="konstanz-1")}
            yield {"site": site, "messages": messages, "channels": channels, "marker": marker,
                   "expected_readings": expected_readings}
        finally:
            pipeline.stop()
            # Remove what this module made; the standard asset types from the migrations stay.
            with connection.cursor() as cursor:
                cursor.execute("TRUNCATE telemetry_reading, telemetry_energybucket, telemetry_deadletter")
            site.organisation.delete()
            get_user_model().objects.all().delete()


def bucket_snapshot() -> list[tuple]:
    return list(EnergyBucket.objects.order_by("channel_id", "start").values_list("channel_id", "start", "energy_wh", "covered_seconds"))


def test_every_local_day_of_2016_equals_the_counter_difference_between_local_midnights(year):
    assert set(counters_by_instant()) == set(year["channels"])
    checked, mismatches = daily_mismatches(year["channels"])
    assert mismatches == []
    # 2016-01-01 starts before the first reading: 365 of 366 days have both midnights, for 6 channels.
    assert checked == 365 * 6


def test_first_day_counts_from_the_first_reading_and_says_it_is_incomplete(year):
    counters = counters_by_instant()["grid_import"]
    first_reading = min(counters)
    expected = (counters[local_midnight(date(2016, 1, 2))] - counters[first_reading]) * 1000
    day = next(p for p in energy_by_local_period([year["channels"]["grid_import"]], ZONE, "day") if p.local_date == date(2016, 1, 1))
    assert day.energy_wh == pytest.approx(float(expected), abs=1.0)
    assert day.coverage == pytest.approx(22 / 24)  # data from 02:00 local


@pytest.mark.parametrize("day, hours", [(date(2016, 3, 27), 23), (date(2016, 10, 30), 25), (date(2016, 6, 1), 24)])
def test_dst_days_have_their_true_number_of_hours(year, day, hours):
    channel_id = year["channels"]["heat_pump"]
    hourly = [p for p in energy_by_local_period([channel_id], ZONE, "hour") if p.local_date == day]
    assert len(hourly) == hours
    counters = counters_by_instant()["heat_pump"]
    day_total = (counters[local_midnight(day + timedelta(days=1))] - counters[local_midnight(day)]) * 1000
    assert sum(p.energy_wh for p in hourly) == pytest.approx(float(day_total), abs=1.0)


def test_every_month_equals_the_counter_difference_between_local_month_starts(year):
    counters = counters_by_instant()["pv"]
    monthly = {(p.start.year, p.start.month): p.energy_wh for p in energy_by_local_period([year["channels"]["pv"]], ZONE, "month")}
    for month in range(2, 13):
        start = local_midnight(date(2016, month, 1))
        end = local_midnight(date(2016 + month // 12, month % 12 + 1, 1))
        assert monthly[(2016, month)] == pytest.approx(float((counters[end] - counters[start]) * 1000), abs=1.0), month


def test_publishing_the_same_messages_again_changes_no_figure(year, mosquitto):
    before_buckets = bucket_snapshot()
    before_readings = Reading.objects.count()

    # The whole file twice more, then one marker reading on another device: the bridge
    # commits batches in order, so once the marker is stored every repeat before it is too.
    publish_all(mosquitto.url, "5", year["messages"] * 2, "test-year-repeat", progress=False)
    marker = year["marker"]
    publish_all(mosquitto.url, "5", [("iotwatt/marker-1/telemetry", '{"ts": "2016-06-01T00:00:00Z", "channels": {"marker": {"energy_wh": 1}}}')], "test-year-marker", progress=False)
    wait_until(lambda: Reading.objects.filter(channel=marker).exists(), 300, "the marker reading")

    assert Reading.objects.exclude(channel=marker).count() == before_readings == year["expected_readings"]
    assert [row for row in bucket_snapshot() if row[0] != marker.id] == before_buckets


def test_household_energy_adds_up_by_role_without_counting_sub_meters_twice(year):
    """The house has two main meters side by side (grid import, heat pump supply); the appliances
    are sub-meters under the grid import; PV is generation."""
    house = Asset.objects.get(site=year["site"], name="House")
    ch = year["channels"]
    daily = {p.start.date(): p for p in asset_energy(house, "day")}
    by_day = {
        key: {p.local_date: p.energy_wh for p in energy_by_local_period([channel_id], ZONE, "day")}
        for key, channel_id in ch.items()
    }
    for day in (date(2016, 1, 15), date(2016, 3, 27), date(2016, 7, 1), date(2016, 10, 30)):
        figures = daily[day]
        grid, heat_pump = by_day["grid_import"][day], by_day["heat_pump"][day]
        appliances = sum(by_day[key][day] for key in ("dishwasher", "washing_machine", "freezer"))
        assert figures.consumption_wh == pytest.approx(grid + heat_pump)
        assert figures.unmetered_wh == pytest.approx(grid - appliances)
        assert figures.generation_wh == pytest.approx(by_day["pv"][day])
        # Summing every channel would count the appliances twice and PV as consumption.
        assert figures.consumption_wh < sum(by_day[key][day] for key in by_day)

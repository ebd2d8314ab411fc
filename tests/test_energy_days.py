"""Days rebuilt from the buckets when the zone that cuts them changes (telemetry/energy_days.py)."""

from datetime import date

import pytest

from assets.models import Site
from telemetry.energy_days import rebuild_energy_days
from telemetry.models import EnergyDay

from .test_local_periods import feed, make_channel

pytestmark = pytest.mark.django_db

# 1 kWh an hour from 2024-01-15T00:00Z to 2024-01-17T00:00Z: UTC days of 24 kWh.
UTC_DAYS = [(f"2024-01-{15 + h // 24}T{h % 24:02d}:00:00+00:00", 100.0 + h) for h in range(49)]


def days(channel) -> dict[date, float]:
    return {row.day: round(row.energy_wh / 1000, 6) for row in EnergyDay.objects.filter(channel=channel).order_by("day")}


def test_rebuild_gives_the_days_the_ingest_kept():
    channel = make_channel("Europe/Madrid")
    feed(UTC_DAYS)
    kept = days(channel)
    EnergyDay.objects.filter(channel=channel).update(energy_wh=0)

    rebuild_energy_days([channel.id])

    assert days(channel) == kept == {date(2024, 1, 15): 23.0, date(2024, 1, 16): 24.0, date(2024, 1, 17): 1.0}


def test_a_site_timezone_change_recuts_the_days():
    channel = make_channel("Europe/Madrid")
    feed(UTC_DAYS)
    site = channel.device.site

    site.timezone = "UTC"
    site.save()

    assert days(channel) == {date(2024, 1, 15): 24.0, date(2024, 1, 16): 24.0}


def test_saving_a_site_without_changing_its_zone_keeps_the_days():
    channel = make_channel("Europe/Madrid")
    feed(UTC_DAYS)
    EnergyDay.objects.filter(channel=channel, day=date(2024, 1, 17)).update(energy_wh=5000)  # left alone unless rebuilt
    site = channel.device.site

    site.name = "Renamed"
    site.save()

    assert days(channel)[date(2024, 1, 17)] == 5.0


def test_a_device_moved_to_a_site_in_another_zone_recuts_its_days():
    channel = make_channel("Europe/Madrid")
    feed(UTC_DAYS)
    device = channel.device
    tokyo = Site.objects.create(organisation=device.site.organisation, name="Tokyo", timezone="Asia/Tokyo")

    device.site = tokyo
    device.save()

    # Tokyo is 9 hours ahead: its 2024-01-15 starts at 2024-01-14T15:00Z.
    assert days(channel) == {date(2024, 1, 15): 15.0, date(2024, 1, 16): 24.0, date(2024, 1, 17): 9.0}

"""energy/ and demand/ of channels, assets and sites over the REST API, with energy put in by the ingest.

Counter values in the cases are kWh; the world's panel carries the main channel, so the site's and
the panel's consumption is that channel's energy.
"""

import csv
import io
import json
from datetime import datetime, timedelta, timezone

import pytest

from assets.models import Site
from telemetry.ingest import ingest_messages

from .api_world import build_world

pytestmark = pytest.mark.django_db

UTC = timezone.utc


def feed(world, readings: list[tuple[str, float]]) -> None:
    """(ts, kWh) counter readings of the world's main channel, through the ingest."""
    messages = [
        {"topic": f"iotwatt/{world.device.identifier}/telemetry", "received_at": ts,
         "payload": json.dumps({"ts": ts, "channels": {"main": {"energy_kwh": kwh}}})}
        for ts, kwh in readings
    ]
    assert ingest_messages(messages).dead_letters == 0


def feed_power(world, first: datetime, powers_w: list[float], counter_kwh: float = 100.0) -> None:
    """Counter readings every 15 minutes from `first`, rising by each quarter hour's power in turn."""
    readings = [(first.isoformat(), counter_kwh)]
    for i, power in enumerate(powers_w, start=1):
        counter_kwh += power * 0.25 / 1000
        readings.append(((first + timedelta(minutes=15 * i)).isoformat(), counter_kwh))
    feed(world, readings)


def get(world, kind: str, obj, what: str, **params):
    response = world.client("viewer").get(f"/api/{kind}/{obj.pk}/{what}/", params)
    assert response.status_code == 200, response.content
    return response.json()


def channel_energy(world, **params):
    return get(world, "channels", world.channel, "energy", **params)


def kwh(value: float):
    return pytest.approx(value, abs=1e-9)


# E12: the spring-forward day in Stockholm

E12 = [((datetime(2023, 3, 25, 23, tzinfo=UTC) + timedelta(hours=i)).isoformat(), 500.0 + i) for i in range(25)]


def test_e12_spring_forward_day_is_23_hourly_rows_of_1_kwh():
    world = build_world("e12", "Europe/Stockholm")
    feed(world, E12)

    body = channel_energy(world, period="hour", **{"from": "2023-03-26", "to": "2023-03-27"})

    rows = body["results"]
    assert [row["label"][11:13] for row in rows] == ["00", "01"] + [f"{h:02d}" for h in range(3, 24)]
    assert [row["energy_kwh"] for row in rows] == [kwh(1.0)] * 23
    assert sum(row["energy_kwh"] for row in rows) == kwh(23.0)
    assert rows[2]["start"] == "2023-03-26T03:00:00+02:00" and rows[2]["start_utc"] == "2023-03-26T01:00:00Z"
    assert [row["coverage"] for row in rows] == [pytest.approx(1.0)] * 23


def test_e12_spring_forward_day_is_23_kwh_fully_covered():
    world = build_world("e12", "Europe/Stockholm")
    feed(world, E12)

    (day,) = channel_energy(world, period="day", **{"from": "2023-03-26", "to": "2023-03-27"})["results"]

    assert (day["label"], day["energy_kwh"], day["energy_wh"], day["coverage"]) == ("2023-03-26", kwh(23.0), pytest.approx(23_000), pytest.approx(1.0))
    assert day["estimated_share"] == 0


# E13: March 2024 in Berlin


def test_e13_march_2024_is_300_9_kwh_and_april_starts_at_local_midnight():
    world = build_world("e13", "Europe/Berlin")
    feed(world, [
        ("2024-03-01T00:00:00+01:00", 700.0), ("2024-03-31T23:00:00+02:00", 1000.4),
        ("2024-04-01T00:00:00+02:00", 1000.9), ("2024-04-01T01:00:00+02:00", 1001.3),
    ])

    months = channel_energy(world, period="month", **{"from": "2024-03-01", "to": "2024-05-01"})["results"]

    assert [(m["label"], m["start"], m["energy_kwh"]) for m in months] == [
        ("2024-03", "2024-03-01T00:00:00+01:00", kwh(300.9)),
        ("2024-04", "2024-04-01T00:00:00+02:00", kwh(0.4)),
    ]
    assert months[0]["coverage"] == pytest.approx(1.0)
    assert months[1]["coverage"] == pytest.approx(1 / (30 * 24))


# E15: the last hour of the day in Amsterdam


def test_e15_day_has_24_hourly_rows_ending_with_1_2_kwh():
    world = build_world("e15", "Europe/Amsterdam")
    feed(world, [(f"2016-03-03T{h:02d}:00:00+01:00", 1000.0 + 0.5 * h) for h in range(24)] + [("2016-03-04T00:00:00+01:00", 1012.7)])

    rows = channel_energy(world, period="hour", **{"from": "2016-03-03", "to": "2016-03-04"})["results"]

    assert len(rows) == 24
    assert (rows[-1]["label"], rows[-1]["energy_kwh"]) == ("2016-03-03T23:00+01:00", kwh(1.2))
    assert sum(row["energy_kwh"] for row in rows) == kwh(12.7)


# E11: Madrid, the site's energy per local day


def test_e11_site_day_is_cut_at_local_midnight():
    world = build_world("e11", "Europe/Madrid")
    feed(world, [
        ("2024-01-14T23:00:00+01:00", 100.0), ("2024-01-15T00:00:00+01:00", 101.0), ("2024-01-15T01:00:00+01:00", 101.5),
        ("2024-01-16T00:00:00+01:00", 121.0), ("2024-01-16T01:00:00+01:00", 122.0),
    ])

    body = get(world, "sites", world.site, "energy", period="day", **{"from": "2024-01-14", "to": "2024-01-17"})

    assert body["site"] == world.site.pk and body["timezone"] == "Europe/Madrid"
    assert [(row["label"], row["consumption_kwh"]) for row in body["results"]] == [
        ("2024-01-14", kwh(1.0)), ("2024-01-15", kwh(20.0)), ("2024-01-16", kwh(1.0)),
    ]
    assert body["results"][1]["coverage"] == pytest.approx(1.0)


# E14: Berlin days around spring forward, as the panel's energy, and in weeks and billing periods

E14 = [
    ("2021-03-27T00:00:00+01:00", 3976.0), ("2021-03-28T00:00:00+01:00", 4000.0),
    ("2021-03-29T00:00:00+02:00", 4021.0), ("2021-03-30T00:00:00+02:00", 4045.0),
]


def test_e14_asset_days_around_spring_forward():
    world = build_world("e14", "Europe/Berlin")
    feed(world, E14)

    body = get(world, "assets", world.panel, "energy", period="day", **{"from": "2021-03-27", "to": "2021-03-30"})

    assert [(row["label"], row["consumption_kwh"], row["coverage"]) for row in body["results"]] == [
        ("2021-03-27", kwh(24.0), pytest.approx(1.0)),
        ("2021-03-28", kwh(21.0), pytest.approx(1.0)),
        ("2021-03-29", kwh(24.0), pytest.approx(1.0)),
    ]


def test_e14_weeks_are_iso_weeks_from_monday():
    world = build_world("e14", "Europe/Berlin")
    feed(world, E14)

    weeks = channel_energy(world, period="week", **{"from": "2021-03-27", "to": "2021-03-30"})["results"]

    assert [(w["label"], w["start"], w["energy_kwh"]) for w in weeks] == [
        ("2021-W12", "2021-03-22T00:00:00+01:00", kwh(45.0)),
        ("2021-W13", "2021-03-29T00:00:00+02:00", kwh(24.0)),
    ]


def test_e14_billing_periods_start_on_the_sites_anchor_day():
    world = build_world("e14", "Europe/Berlin")
    Site.objects.filter(pk=world.site.pk).update(billing_anchor_day=28)
    feed(world, E14)

    body = channel_energy(world, period="billing", **{"from": "2021-03-27", "to": "2021-03-30"})

    assert body["billing_anchor_day"] == 28
    assert [(p["label"], p["energy_kwh"]) for p in body["results"]] == [("2021-02-28", kwh(24.0)), ("2021-03-28", kwh(45.0))]


def test_year_rows_and_empty_periods_in_range():
    world = build_world("year", "Europe/Berlin")
    feed(world, E14)

    years = channel_energy(world, period="year", **{"from": "2020-01-01", "to": "2022-01-01"})["results"]

    assert [(y["label"], y["energy_kwh"], y["coverage"]) for y in years] == [("2020", 0.0, 0.0), ("2021", kwh(69.0), pytest.approx(71 / (365 * 24)))]


def test_without_a_range_the_rows_are_the_days_with_data():
    world = build_world("span", "Europe/Berlin")
    feed(world, E14)

    body = channel_energy(world)

    assert (body["period"], body["from"], body["to"]) == ("day", "2021-03-27", "2021-03-30")
    assert [row["label"] for row in body["results"]] == ["2021-03-27", "2021-03-28", "2021-03-29"]


def test_without_data_there_are_no_rows():
    world = build_world("nodata", "Europe/Berlin")

    assert channel_energy(world)["results"] == []
    assert channel_energy(world, **{"from": "2024-01-01", "to": "2024-01-03"})["results"][0]["coverage"] == 0.0


# CSV


def csv_rows(response) -> list[dict]:
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(response.content.decode())))


def test_csv_by_format_parameter_has_a_header_and_a_row_per_period():
    world = build_world("csv", "Europe/Stockholm")
    feed(world, E12)

    response = world.client("viewer").get(
        f"/api/channels/{world.channel.pk}/energy/", {"period": "hour", "from": "2023-03-26", "to": "2023-03-27", "format": "csv"}
    )

    rows = csv_rows(response)
    assert len(rows) == 23
    assert list(rows[0]) == ["start", "start_utc", "label", "energy_wh", "energy_kwh", "coverage", "estimated_share"]
    assert (rows[2]["start"], rows[2]["start_utc"], float(rows[2]["energy_kwh"])) == (
        "2023-03-26T03:00:00+02:00", "2023-03-26T01:00:00Z", pytest.approx(1.0)
    )


def test_csv_by_accept_header_for_a_site():
    world = build_world("csv", "Europe/Madrid")
    feed(world, [("2024-01-15T00:00:00+01:00", 101.0), ("2024-01-16T00:00:00+01:00", 121.0)])

    response = world.client("viewer").get(
        f"/api/sites/{world.site.pk}/energy/", {"from": "2024-01-15", "to": "2024-01-16"}, HTTP_ACCEPT="text/csv"
    )

    (row,) = csv_rows(response)
    assert (row["label"], float(row["consumption_kwh"]), float(row["coverage"])) == ("2024-01-15", pytest.approx(20.0), pytest.approx(1.0))


def test_an_empty_csv_still_has_its_header():
    world = build_world("csv", "Europe/Berlin")

    response = world.client("viewer").get(f"/api/channels/{world.channel.pk}/energy/", {"format": "csv"})

    assert response.content.decode().splitlines() == ["start,start_utc,label,energy_wh,energy_kwh,coverage,estimated_share"]


# Bad requests and tenancy


@pytest.mark.parametrize(
    "params, field",
    [
        ({"period": "fortnight"}, "period"),
        ({"from": "2024-02-30"}, "from"),
        ({"from": "yesterday"}, "from"),
        ({"from": "2024-03-02", "to": "2024-03-01"}, "to"),
        ({"from": "2024-03-01", "to": "2024-03-01"}, "to"),
        ({"period": "hour", "from": "2023-01-01", "to": "2024-01-03"}, "to"),
        ({"from": "0001-01-01"}, "from"),
    ],
)
def test_bad_parameters_are_a_clear_400(params, field):
    world = build_world("bad", "Europe/Berlin")

    response = world.client("viewer").get(f"/api/channels/{world.channel.pk}/energy/", params)

    assert response.status_code == 400 and field in response.json()


def test_a_year_of_hours_is_allowed():
    world = build_world("hours", "Europe/Berlin")

    rows = channel_energy(world, period="hour", **{"from": "2024-01-01", "to": "2025-01-01"})["results"]

    assert len(rows) == 366 * 24


@pytest.mark.parametrize("kind", ["channels", "assets", "sites"])
@pytest.mark.parametrize("what", ["energy", "demand"])
def test_another_organisations_object_is_404(kind, what):
    ours, theirs = build_world("ours"), build_world("theirs")
    obj = {"channels": theirs.channel, "assets": theirs.panel, "sites": theirs.site}[kind]

    assert ours.client("viewer").get(f"/api/{kind}/{obj.pk}/{what}/").status_code == 404


# Demand

E10_PEAKS = {  # local interval start -> average power (W) of that 15-minute interval
    datetime(2026, 5, 4, 18, 15): 3120.0,
    datetime(2026, 5, 9, 19, 0): 4481.0,
    datetime(2026, 5, 11, 7, 45): 2950.0,
}


def e10_world():
    """Brussels, May 2026: 500 W all month but for the three intervals of the case."""
    from zoneinfo import ZoneInfo

    world = build_world("e10", "Europe/Brussels")
    zone = ZoneInfo("Europe/Brussels")
    first = datetime(2026, 5, 1, tzinfo=zone)
    quarters = 31 * 96
    powers = [E10_PEAKS.get((first.astimezone(UTC) + timedelta(minutes=15 * i)).astimezone(zone).replace(tzinfo=None), 500.0) for i in range(quarters)]
    feed_power(world, first, powers)
    return world


def test_e10_monthly_peak_in_w_and_kw_with_its_time():
    world = e10_world()

    body = get(world, "sites", world.site, "demand", **{"from": "2026-05-01", "to": "2026-06-01"})

    (peak,) = body["peaks"]
    assert body["interval_minutes"] == 15 and body["channels"] == [world.channel.pk]
    assert (peak["month"], peak["start"]) == ("2026-05", "2026-05-09T19:00:00+02:00")
    assert (peak["demand_w"], peak["demand_kw"]) == (pytest.approx(4481.0), pytest.approx(4.481))
    assert peak["coverage"] == pytest.approx(1.0)
    assert "intervals" not in body


def test_e10_intervals_on_request_within_a_bounded_range():
    world = e10_world()

    body = get(world, "channels", world.channel, "demand", intervals="true", **{"from": "2026-05-04", "to": "2026-05-05"})

    by_start = {i["start"]: i["demand_w"] for i in body["intervals"]}
    assert len(by_start) == 96
    assert by_start["2026-05-04T18:15:00+02:00"] == pytest.approx(3120.0)
    assert by_start["2026-05-04T18:30:00+02:00"] == pytest.approx(500.0)
    too_long = world.client("viewer").get(f"/api/channels/{world.channel.pk}/demand/", {"intervals": "true", "from": "2026-01-01", "to": "2026-06-01"})
    assert too_long.status_code == 400


def test_e10_peaks_as_csv():
    world = e10_world()

    response = world.client("viewer").get(f"/api/assets/{world.panel.pk}/demand/", {"format": "csv"})

    (row,) = csv_rows(response)
    assert (row["month"], float(row["demand_kw"])) == ("2026-05", pytest.approx(4.481))


@pytest.mark.parametrize(
    "zone, minutes, first, expected_peak_start",
    [
        # 10:00-10:30 at 4000 W, 10:30-11:00 at 2000 W: on the local clock the hour from 10:00 averages
        # 3000 W; an hour cut at UTC :00 (local :30) would never exceed 2000 W.
        ("Asia/Kolkata", 60, "2024-06-01T09:00:00+05:30", "2024-06-01T10:00:00+05:30"),
        # The same half hours in Kathmandu: 30-minute intervals at local :00 and :30 (UTC :15 and :45).
        ("Asia/Kathmandu", 30, "2024-06-01T09:00:00+05:45", "2024-06-01T10:00:00+05:45"),
    ],
)
def test_demand_intervals_follow_the_local_clock(zone, minutes, first, expected_peak_start):
    world = build_world("demand", zone)
    Site.objects.filter(pk=world.site.pk).update(demand_interval_minutes=minutes)
    powers = [0, 0, 0, 0, 4000, 4000, 2000, 2000, 0, 0, 0, 0]  # 09:00 .. 12:00 local, by quarter hour
    feed_power(world, datetime.fromisoformat(first), powers)

    body = get(world, "channels", world.channel, "demand", intervals="true", **{"from": "2024-06-01", "to": "2024-06-02"})

    (peak,) = body["peaks"]
    expected = 3000.0 if minutes == 60 else 4000.0
    assert (peak["start"], peak["demand_w"]) == (expected_peak_start, pytest.approx(expected))
    assert all(datetime.fromisoformat(i["start"]).minute % minutes == 0 for i in body["intervals"])


# Power channels in an asset's energy


def feed_power_samples(world, key: str, first: datetime, watts: list[float]) -> None:
    messages = [
        {"topic": f"iotwatt/{world.device.identifier}/telemetry", "received_at": (first + timedelta(minutes=i)).isoformat(),
         "payload": json.dumps({"ts": (first + timedelta(minutes=i)).isoformat(), "channels": {key: {"power_w": w}}})}
        for i, w in enumerate(watts)
    ]
    assert ingest_messages(messages).dead_letters == 0


def test_a_circuit_measured_only_by_power_adds_its_integrated_energy_to_the_asset():
    from assets.models import Channel

    world = build_world("powered", "Europe/Berlin")
    Channel.objects.create(device=world.device, key="chiller", metric=Channel.Metric.POWER, role=Channel.Role.SUB_METER, asset=world.circuit)
    feed_power_samples(world, "chiller", datetime(2024, 5, 6, 8, tzinfo=UTC), [6000.0] * 61)  # one hour at 6 kW

    rows = get(world, "assets", world.circuit, "energy", period="day", **{"from": "2024-05-06", "to": "2024-05-07"})["results"]
    assert rows[0]["consumption_kwh"] == kwh(6.0)


def test_a_circuit_with_a_counter_and_power_is_counted_once_from_the_counter():
    from assets.models import Channel

    world = build_world("powered", "Europe/Berlin")
    Channel.objects.create(device=world.device, key="main", metric=Channel.Metric.POWER, role=Channel.Role.MAIN, asset=world.panel)
    first = datetime(2024, 5, 6, 8, tzinfo=UTC)
    feed_power_samples(world, "main", first, [6000.0] * 61)
    feed(world, [(first.isoformat(), 100.0), ((first + timedelta(hours=1)).isoformat(), 105.0)])

    rows = get(world, "assets", world.panel, "energy", period="day", **{"from": "2024-05-06", "to": "2024-05-07"})["results"]
    assert rows[0]["consumption_kwh"] == kwh(5.0)  # the counter's 5 kWh, not 5 + 6


def test_a_device_reporting_a_counter_and_power_under_different_keys_is_counted_once():
    """Tasmota and Shelly maps read ENERGY.Total as "energy" and ENERGY.Power as "power": one circuit, two keys."""
    from assets.models import Channel

    world = build_world("tasmota-like", "Europe/Berlin")
    Channel.objects.create(device=world.device, key="total", metric=Channel.Metric.ENERGY, role=Channel.Role.SUB_METER, asset=world.circuit)
    Channel.objects.create(device=world.device, key="watts", metric=Channel.Metric.POWER, role=Channel.Role.SUB_METER, asset=world.circuit)
    first = datetime(2024, 5, 6, 8, tzinfo=UTC)
    feed_power_samples(world, "watts", first, [360.0] * 61)
    messages = [
        {"topic": f"iotwatt/{world.device.identifier}/telemetry", "received_at": t.isoformat(),
         "payload": json.dumps({"ts": t.isoformat(), "channels": {"total": {"energy_kwh": kwh}}})}
        for t, kwh in [(first, 10.0), (first + timedelta(hours=1), 10.36)]
    ]
    assert ingest_messages(messages).dead_letters == 0

    rows = get(world, "assets", world.circuit, "energy", period="day", **{"from": "2024-05-06", "to": "2024-05-07"})["results"]
    assert rows[0]["consumption_kwh"] == kwh(0.36)  # not 0.72


def test_days_over_ten_years_are_refused_and_months_are_not():
    world = build_world("long-range", "Europe/Berlin")
    url = f"/api/channels/{world.channel.pk}/energy/"
    client = world.client("viewer")

    refused = client.get(url, {"period": "day", "from": "1900-01-01", "to": "2199-12-31"})
    assert refused.status_code == 400 and "At most 3660 days" in refused.json()["to"][0]
    assert client.get(url, {"period": "month", "from": "1900-01-01", "to": "2199-12-31"}).status_code == 200


@pytest.mark.parametrize("value", ["2021-W12-1", "20210322", "2021-03-22T00:00"])
def test_dates_other_than_year_month_day_are_refused(value):
    world = build_world("date-forms", "Europe/Berlin")
    response = world.client("viewer").get(f"/api/channels/{world.channel.pk}/energy/", {"from": value, "to": "2021-04-01"})
    assert response.status_code == 400 and "from" in response.json()

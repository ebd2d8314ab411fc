"""The daily consumption chart on the site and asset change pages (inline SVG, no script)."""

from datetime import date

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse

from assets.energy_admin import chart_range
from assets.models import Membership
from telemetry.energy_chart import ChartDay, daily_bar_chart

from .api_world import build_world
from .test_api_energy import feed

E14 = [
    ("2021-03-27T00:00:00+01:00", 3976.0), ("2021-03-28T00:00:00+01:00", 4000.0),
    ("2021-03-29T00:00:00+02:00", 4021.0), ("2021-03-29T12:00:00+02:00", 4033.0),
]


# The chart alone


def test_one_bar_per_day_with_its_value_on_hover():
    svg = daily_bar_chart([ChartDay("2021-03-27", 24.0, 1.0), ChartDay("2021-03-28", 21.0, 1.0)], "in March")

    assert svg.startswith("<svg") and "<script" not in svg and "http://" not in svg.replace("http://www.w3.org/2000/svg", "")
    assert svg.count("<rect x=") == 2
    assert "<title>2021-03-27: 24.00 kWh</title>" in svg and "<title>2021-03-28: 21.00 kWh</title>" in svg
    assert ">27</text>" in svg and ">28</text>" in svg


def test_an_incomplete_day_is_marked():
    svg = daily_bar_chart([ChartDay("2021-03-29", 12.0, 0.5), ChartDay("2021-03-30", 24.0, 1.0)], "x")

    assert "<title>2021-03-29: 12.00 kWh, data for 50% of the day</title>" in svg
    assert svg.count('class="day partial"') == 1 and "url(#partial-day)" in svg


def test_no_data_is_an_empty_state_message():
    assert daily_bar_chart([ChartDay("2021-03-29", 0.0, 0.0)], "from 2021-03-29 to 2021-03-29") == (
        '<p class="energy-chart-empty">No energy recorded from 2021-03-29 to 2021-03-29.</p>'
    )


def test_chart_range_defaults_to_the_last_31_days_and_reports_bad_parameters():
    today = date(2024, 3, 15)
    assert chart_range({}, "Europe/Berlin", today) == (date(2024, 2, 14), date(2024, 3, 16), "")
    assert chart_range({"energy_from": "2021-03-27", "energy_to": "2021-03-30"}, "Europe/Berlin", today)[:2] == (date(2021, 3, 27), date(2021, 3, 30))
    assert chart_range({"energy_from": "nonsense"}, "Europe/Berlin", today)[2]
    assert chart_range({"energy_from": "2021-03-30", "energy_to": "2021-03-27"}, "Europe/Berlin", today)[2]


# On the admin pages


@pytest.fixture
def world(db, client):
    world = build_world("chart", "Europe/Berlin")
    user = User.objects.create_user("olga", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="assets"))
    Membership.objects.create(user=user, organisation=world.organisation, role=Membership.Role.VIEWER)
    client.force_login(user)
    return world


@pytest.mark.parametrize("page", ["site", "asset"])
def test_change_page_shows_the_days_of_the_chosen_range(world, client, page):
    feed(world, E14)
    url = reverse("admin:assets_site_change", args=[world.site.pk]) if page == "site" else reverse("admin:assets_asset_change", args=[world.root.pk])

    html = client.get(url, {"energy_from": "2021-03-27", "energy_to": "2021-03-30"}).content.decode()

    assert 'class="energy-chart"' in html
    assert "<title>2021-03-27: 24.00 kWh</title>" in html
    assert "<title>2021-03-28: 21.00 kWh</title>" in html  # the 23-hour day, fully measured
    assert "<title>2021-03-29: 12.00 kWh, data for 50% of the day</title>" in html


def test_change_page_without_energy_says_so(world, client):
    html = client.get(reverse("admin:assets_asset_change", args=[world.rack.pk])).content.decode()

    assert "No energy recorded from" in html and 'class="energy-chart"' not in html


@pytest.mark.parametrize("query", ["energy_from=9999-12-31", "energy_to=0001-01-01", "energy_from=0001-01-01&energy_to=0001-01-05"])
def test_dates_at_the_ends_of_the_calendar_fall_back_to_the_last_31_days(admin_client, query):
    from assets.models import Organisation, Site

    organisation = Organisation.objects.create(name="Far", slug="far")
    site = Site.objects.create(organisation=organisation, name="Far", timezone="Europe/Berlin")

    page = admin_client.get(f"/admin/assets/site/{site.pk}/change/?{query}")

    assert page.status_code == 200
    assert "Dates run from 1900-01-01 to 2199-12-31" in page.content.decode()

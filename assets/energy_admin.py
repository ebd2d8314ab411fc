"""The daily consumption chart on the site and asset change pages of the admin."""

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from django.utils.safestring import mark_safe

from telemetry.asset_energy import asset_energy, site_energy
from telemetry.periods import EARLIEST, LATEST
from telemetry.energy_chart import ChartDay, daily_bar_chart

CHART_DAYS = 31
MAX_CHART_DAYS = 366


def chart_range(params, zone: str, today: date | None = None) -> tuple[date, date, str]:
    """[from, to) local dates from the energy_from/energy_to GET parameters; by default the last 31 days
    up to today. Returns the range and what was wrong with the parameters ("" if nothing)."""
    today = today or datetime.now(ZoneInfo(zone)).date()
    default = (today + timedelta(days=1) - timedelta(days=CHART_DAYS), today + timedelta(days=1))
    try:
        start = date.fromisoformat(params["energy_from"]) if params.get("energy_from") else None
        end = date.fromisoformat(params["energy_to"]) if params.get("energy_to") else None
    except ValueError:
        return *default, "Dates are YYYY-MM-DD; showing the last 31 days."
    if start is None and end is None:
        return *default, ""
    if not all(EARLIEST <= day <= LATEST for day in (start, end) if day is not None):
        return *default, f"Dates run from {EARLIEST} to {LATEST}; showing the last 31 days."
    start = start or end - timedelta(days=CHART_DAYS)
    end = end or start + timedelta(days=CHART_DAYS)
    if not 0 < (end - start).days <= MAX_CHART_DAYS:
        return *default, f"The end must come after the start, at most {MAX_CHART_DAYS} days; showing the last 31 days."
    return start, end, ""


class EnergyChartMixin:
    """Adds the chart to the change page of an object with energy.

    The admin using it gives `chart_rows(obj, start, end)` (the object's daily figures over the local
    dates [start, end)) and `chart_zone(obj)` (the IANA zone its days are cut in).
    """

    change_form_template = "admin/assets/change_form_with_energy.html"

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None and obj.pk:
            zone = self.chart_zone(obj)
            start, end, problem = chart_range(request.GET, zone)
            rows = self.chart_rows(obj, start, end)
            days = [ChartDay(row.label, row.consumption_wh / 1000, row.coverage) for row in rows]
            caption = f"from {start} to {end - timedelta(days=1)}"
            context |= {
                "energy_chart": mark_safe(daily_bar_chart(days, caption)),  # built from escaped parts
                "energy_from": start, "energy_to": end, "energy_range_error": problem, "energy_timezone": zone,
            }
        return super().render_change_form(request, context, add, change, form_url, obj)


class SiteEnergyChartMixin(EnergyChartMixin):
    def chart_rows(self, obj, start, end):
        return site_energy(obj, "day", start, end, include_empty=True)

    def chart_zone(self, obj):
        return obj.timezone


class AssetEnergyChartMixin(EnergyChartMixin):
    def chart_rows(self, obj, start, end):
        return asset_energy(obj, "day", start, end, include_empty=True)

    def chart_zone(self, obj):
        return obj.site.timezone

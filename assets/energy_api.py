"""Energy and demand endpoints of channels, assets and sites: `{id}/energy/` and `{id}/demand/`.

Query parameters are local dates of the site's zone, half-open [from, to); each row is a whole
local period (`from` rounds down to the start of its period, `to` up to the end of its own).
Without them, the range is the days that have data (hours: the last 31 of them). JSON by
default; CSV with `?format=csv` or `Accept: text/csv`.
"""

import csv
import io
from datetime import date, timedelta, timezone
from zoneinfo import ZoneInfo

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.decorators import action
from rest_framework.renderers import BaseRenderer, BrowsableAPIRenderer, JSONRenderer
from rest_framework.response import Response

from telemetry.asset_energy import EnergyScope, scope_energy
from telemetry.demand import demand_intervals, monthly_peaks
from telemetry.localtime import data_span
from telemetry.periods import EARLIEST, LATEST, PERIODS, local_midnight

from .metering import MeteringPlan
from .serializers import LocalDateTimeField

MAX_HOUR_DAYS = 366  # hourly rows come from the buckets: a year at most per request
# Rows per request stay in the thousands: a year of hours, ten years of days or weeks; months and longer are few.
MAX_DAYS = {"hour": MAX_HOUR_DAYS, "day": 3660, "week": 3660}
MAX_INTERVAL_DAYS = 93  # demand intervals: a quarter at most per request
DEFAULT_HOUR_DAYS = 31
DEFAULT_SPAN_DAYS = {"hour": 1, "day": 31, "week": 84, "month": 366, "year": 5 * 366, "billing": 366}


# --- query parameters


class RangeQuerySerializer(serializers.Serializer):
    # Only YYYY-MM-DD: Python would also read ISO week dates ("2021-W12-1") and other forms the API does not promise.
    from_ = serializers.DateField(required=False, input_formats=["%Y-%m-%d"], help_text="First local date (YYYY-MM-DD), included")
    to = serializers.DateField(required=False, input_formats=["%Y-%m-%d"], help_text="Local date (YYYY-MM-DD) the range ends at, excluded")
    format = serializers.ChoiceField(choices=["json", "csv"], required=False, help_text="csv: the rows as CSV with a header row")

    max_days: int | None = None

    def get_fields(self):
        fields = super().get_fields()
        fields["from"] = fields.pop("from_")  # a Python keyword, so declared under another name
        return fields

    def validate(self, attrs):
        for name in ("from", "to"):
            if name in attrs and not EARLIEST <= attrs[name] <= LATEST:
                raise serializers.ValidationError({name: [f"Give a date from {EARLIEST} to {LATEST}."]})
        if "from" in attrs and "to" in attrs:
            if attrs["to"] <= attrs["from"]:
                raise serializers.ValidationError({"to": ["Must be after from (the range is [from, to))."]})
            limit = self.limit_days(attrs)
            if limit is not None and (attrs["to"] - attrs["from"]).days > limit:
                raise serializers.ValidationError({"to": [f"At most {limit} days for {self.limited_what(attrs)}."]})
        return attrs

    def limit_days(self, attrs) -> int | None:
        return None

    def limited_what(self, attrs) -> str:
        return ""


class EnergyQuerySerializer(RangeQuerySerializer):
    period = serializers.ChoiceField(choices=list(PERIODS), default="day", help_text="Local period of the site's zone")

    def limit_days(self, attrs):
        return MAX_DAYS.get(attrs["period"])

    def limited_what(self, attrs):
        return f"{attrs['period']}ly rows" if attrs["period"] != "day" else "daily rows"


class DemandQuerySerializer(RangeQuerySerializer):
    intervals = serializers.BooleanField(default=False, help_text=f"Also list every demand interval (at most {MAX_INTERVAL_DAYS} days)")

    def limit_days(self, attrs):
        return MAX_INTERVAL_DAYS if attrs["intervals"] else None

    def limited_what(self, attrs):
        return "demand intervals"


def resolve_range(period: str, start: date | None, end: date | None, span: tuple[date, date] | None) -> tuple[date, date] | None:
    """The local dates [start, end) to answer for; None when nothing was asked and there is no data."""
    if start and end:
        return start, end
    default_days = timedelta(days=DEFAULT_SPAN_DAYS[period])
    if end is None:
        after_data = span[1] + timedelta(days=1) if span else None
        if after_data and (start is None or after_data > start):
            end = after_data
        elif start:
            end = start + default_days
        else:
            return None
    if start is None:
        start = span[0] if span and span[0] < end else end - default_days
        if period == "hour":
            start = max(start, end - timedelta(days=DEFAULT_HOUR_DAYS))
    if period in MAX_DAYS:
        end = min(end, start + timedelta(days=MAX_DAYS[period]))
    return start, end


# --- answers


class EnergyRangeSerializer(serializers.Serializer):
    period = serializers.ChoiceField(choices=list(PERIODS))
    timezone = serializers.CharField()
    billing_anchor_day = serializers.IntegerField()
    from_ = serializers.DateField(allow_null=True, help_text="First local date of the range asked (empty: no data)")
    to = serializers.DateField(allow_null=True, help_text="Local date the range ends at, excluded")

    def get_fields(self):
        fields = super().get_fields()
        fields["from"] = fields.pop("from_")
        return fields


class PeriodRowSerializer(serializers.Serializer):
    start = LocalDateTimeField(help_text="Start of the local period, with the site's UTC offset")
    start_utc = serializers.DateTimeField(help_text="The same instant in UTC")
    label = serializers.CharField(help_text="e.g. 2024-03-31T03:00+02:00, 2024-03-31, 2024-W13, 2024-03, 2024")
    coverage = serializers.FloatField(help_text="Share of the period with data (0-1)")
    estimated_share = serializers.FloatField(help_text="Share of the energy whose place in time is estimated (0-1)")


class ChannelPeriodSerializer(PeriodRowSerializer):
    energy_wh = serializers.FloatField()
    energy_kwh = serializers.FloatField()


class AssetPeriodSerializer(PeriodRowSerializer):
    consumption_wh = serializers.FloatField(help_text="Each main once, sub-meters without a main above them")
    consumption_kwh = serializers.FloatField()
    unmetered_wh = serializers.FloatField(help_text="Mains minus their sub-meters")
    generation_wh = serializers.FloatField()
    export_wh = serializers.FloatField()
    storage_wh = serializers.FloatField()
    by_channel = serializers.DictField(child=serializers.FloatField(), help_text="Energy (Wh) per channel id")


class ChannelEnergySerializer(EnergyRangeSerializer):
    channel = serializers.IntegerField()
    results = ChannelPeriodSerializer(many=True)


class AssetEnergySerializer(EnergyRangeSerializer):
    asset = serializers.IntegerField()
    results = AssetPeriodSerializer(many=True)


class SiteEnergySerializer(EnergyRangeSerializer):
    site = serializers.IntegerField()
    results = AssetPeriodSerializer(many=True)


class DemandIntervalSerializer(serializers.Serializer):
    start = LocalDateTimeField(help_text="Start of the interval, local time with offset")
    start_utc = serializers.DateTimeField()
    demand_w = serializers.FloatField(help_text="Average power over the interval, W")
    demand_kw = serializers.FloatField(help_text="The same in kW")
    coverage = serializers.FloatField()


class MonthlyPeakSerializer(DemandIntervalSerializer):
    month = serializers.CharField(help_text="Local month, e.g. 2026-05")


class DemandSerializer(serializers.Serializer):
    timezone = serializers.CharField()
    interval_minutes = serializers.IntegerField()
    from_ = serializers.DateField(allow_null=True)
    to = serializers.DateField(allow_null=True)
    channels = serializers.ListField(child=serializers.IntegerField(), help_text="The channels summed (consumption)")
    peaks = MonthlyPeakSerializer(many=True, help_text="Per local month: its highest interval demand")
    intervals = DemandIntervalSerializer(many=True, required=False, help_text="Only with intervals=true")

    def get_fields(self):
        fields = super().get_fields()
        fields["from"] = fields.pop("from_")
        return fields


class CSVRenderer(BaseRenderer):
    """The answer's rows as CSV with a header row; nested values (by_channel) stay in the JSON."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        view = (renderer_context or {}).get("view")
        key = getattr(view, "csv_rows_key", "results")
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        if not isinstance(data, dict) or key not in data:  # an error: its messages, one a line
            writer.writerow(["field", "message"])
            for field, messages in (data.items() if isinstance(data, dict) else [("detail", data)]):
                for message in messages if isinstance(messages, list) else [messages]:
                    writer.writerow([field, message])
            return out.getvalue().encode()
        columns = getattr(view, "csv_columns", None) or []
        writer.writerow(columns)
        for row in data[key]:
            writer.writerow([row.get(column, "") for column in columns])
        return out.getvalue().encode()


ENERGY_RENDERERS = [JSONRenderer, BrowsableAPIRenderer, CSVRenderer]
CSV_COLUMNS = {
    "energy": ["start", "start_utc", "label", "energy_wh", "energy_kwh", "coverage", "estimated_share"],
    "consumption": [
        "start", "start_utc", "label", "consumption_wh", "consumption_kwh", "unmetered_wh", "generation_wh", "export_wh",
        "storage_wh", "coverage", "estimated_share",
    ],
}
INTERVAL_COLUMNS = ["start", "start_utc", "demand_w", "demand_kw", "coverage"]


def period_row(row, energy_name: str) -> dict:
    values = {
        "start": row.start,
        "start_utc": row.start.astimezone(timezone.utc),
        "label": row.label,
        f"{energy_name}_wh": row.consumption_wh,
        f"{energy_name}_kwh": row.consumption_wh / 1000,
        "coverage": row.coverage,
        "estimated_share": row.estimated_share,
    }
    if energy_name == "consumption":
        values |= {
            "unmetered_wh": row.unmetered_wh, "generation_wh": row.generation_wh, "export_wh": row.export_wh,
            "storage_wh": row.storage_wh, "by_channel": {str(c): wh for c, wh in sorted(row.by_channel.items())},
        }
    return values


def interval_row(interval) -> dict:
    return {
        "start": interval.start, "start_utc": interval.start.astimezone(timezone.utc),
        "demand_w": interval.demand_w, "demand_kw": interval.demand_kw, "coverage": interval.coverage,
    }


def energy_schema(what: str, answer):
    return extend_schema(
        summary=f"Energy of the {what} per local period",
        description=__doc__,
        parameters=[EnergyQuerySerializer],
        responses={200: answer, 400: OpenApiResponse(description="Unknown period, bad date or too long a range")},
    )


def demand_schema(what: str):
    return extend_schema(
        summary=f"Demand of the {what}: monthly peaks, and optionally every interval",
        description="Average power per demand interval of the site (15, 30 or 60 minutes on the local clock) of the "
        "consumption channels summed, from the 15-minute buckets, and each local month's peak with its time; W and kW.",
        parameters=[DemandQuerySerializer],
        responses={200: DemandSerializer, 400: OpenApiResponse(description="Bad date or too long a range")},
    )


def channel_scope(channel) -> EnergyScope:
    """A channel alone: its own energy is the figure, whatever its role."""
    site = channel.device.site
    return EnergyScope(site.timezone, site.billing_anchor_day, [channel.pk], MeteringPlan(consumption=[channel.pk]))


class EnergyActionsMixin:
    """`{id}/energy/` and `{id}/demand/` of a viewset.

    The viewset using it says what the object measures, `energy_scope(obj) -> EnergyScope`, and
    where its site is, `site_of(obj) -> Site`.
    """

    energy_answer_name = "asset"  # the id field of the answer
    energy_answer_serializer = AssetEnergySerializer
    energy_name = "consumption"  # "consumption" (with the role columns) or "energy" (one channel)

    def query(self, serializer_class) -> dict:
        query = serializer_class(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        return query.validated_data

    @action(detail=True, filter_backends=[], pagination_class=None, renderer_classes=ENERGY_RENDERERS)
    def energy(self, request, pk=None):
        obj = self.get_object()
        params = self.query(EnergyQuerySerializer)
        scope = self.energy_scope(obj)
        period = params["period"]
        bounds = resolve_range(period, params.get("from"), params.get("to"), data_span(scope.channel_ids))
        rows = scope_energy(scope, period, *bounds, include_empty=True) if bounds else []
        self.csv_columns = CSV_COLUMNS[self.energy_name]
        answer = {
            self.energy_answer_name: obj.pk, "period": period, "timezone": scope.zone,
            "billing_anchor_day": scope.anchor_day, "from": bounds[0] if bounds else None,
            "to": bounds[1] if bounds else None, "results": [period_row(row, self.energy_name) for row in rows],
        }
        return Response(self.energy_answer_serializer(answer).data)

    @action(detail=True, filter_backends=[], pagination_class=None, renderer_classes=ENERGY_RENDERERS)
    def demand(self, request, pk=None):
        obj = self.get_object()
        params = self.query(DemandQuerySerializer)
        site = self.site_of(obj)
        channels = sorted(self.energy_scope(obj).plan.consumption)
        bounds = resolve_range("month", params.get("from"), params.get("to"), data_span(channels))
        with_intervals = params["intervals"]
        if with_intervals and bounds and (bounds[1] - bounds[0]).days > MAX_INTERVAL_DAYS:
            raise serializers.ValidationError({"intervals": [f"At most {MAX_INTERVAL_DAYS} days of intervals: give from and to."]})
        self.csv_rows_key = "intervals" if with_intervals else "peaks"
        self.csv_columns = INTERVAL_COLUMNS if with_intervals else ["month"] + INTERVAL_COLUMNS
        zone, minutes = site.timezone, site.demand_interval_minutes
        answer = {"timezone": zone, "interval_minutes": minutes, "from": None, "to": None, "channels": channels, "peaks": []}
        if with_intervals:
            answer["intervals"] = []
        if bounds is None:
            return Response(DemandSerializer(answer).data)
        answer["from"], answer["to"] = bounds
        answer["peaks"] = [{"month": peak.month} | interval_row(peak.interval) for peak in monthly_peaks(channels, zone, minutes, *bounds)]
        if with_intervals:
            tz = ZoneInfo(zone)
            first, last = local_midnight(tz, bounds[0]), local_midnight(tz, bounds[1])
            answer["intervals"] = [interval_row(i) for i in demand_intervals(channels, zone, minutes, first, last)]
        return Response(DemandSerializer(answer).data)

"""Energy of an asset's subtree, or of a whole site, per local period, by channel role, without double counting."""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from assets.metering import MeteredChannel, MeteringPlan, metering_plan
from assets.models import Asset, Channel, Site
from assets.tree import subtree_parents

from .channel_rules import ENERGY_METRICS
from .localtime import PeriodTotals, data_span, period_totals


@dataclass
class AssetPeriodEnergy:
    start: datetime  # aware, in the site's zone
    label: str = ""
    seconds: float = 0.0  # the period's length in UTC
    consumption_wh: float = 0.0
    unmetered_wh: float = 0.0
    generation_wh: float = 0.0
    export_wh: float = 0.0
    storage_wh: float = 0.0
    coverage: float = 0.0  # the least covered of the channels that make up consumption
    estimated_wh: float = 0.0  # the part of consumption whose place in time is estimated
    by_channel: dict[int, float] = field(default_factory=dict)

    @property
    def estimated_share(self) -> float:
        return self.estimated_wh / self.consumption_wh if self.consumption_wh else 0.0


@dataclass
class EnergyScope:
    """The channels of one or more disjoint subtrees and how they add up."""

    zone: str
    anchor_day: int
    channel_ids: list[int]
    plan: MeteringPlan


def _merge(plans: list[MeteringPlan]) -> MeteringPlan:
    merged = MeteringPlan()
    for plan in plans:
        merged.consumption += plan.consumption
        merged.generation += plan.generation
        merged.export += plan.export
        merged.storage += plan.storage
        merged.unmetered.update(plan.unmetered)
    return merged


def metered_channels(asset_ids) -> list[MeteredChannel]:
    """The channels the assets' energy comes from: counters, and power channels of an asset and role no
    counter measures (a Tasmota or Shelly reports both for one circuit, under different keys)."""
    rows = Channel.objects.filter(asset_id__in=asset_ids, metric__in=ENERGY_METRICS).values_list("id", "asset_id", "role", "metric")
    with_counter = {(asset_id, role) for _, asset_id, role, metric in rows if metric == Channel.Metric.ENERGY}
    return [
        MeteredChannel(channel_id, asset_id, role)
        for channel_id, asset_id, role, metric in rows
        if metric == Channel.Metric.ENERGY or (asset_id, role) not in with_counter
    ]


def energy_scope(site: Site, root_ids: list[int]) -> EnergyScope:
    """The metering of the subtrees under `root_ids` (disjoint subtrees: a site's roots, or one asset)."""
    parents = {root_id: subtree_parents(root_id) for root_id in root_ids}
    channels = metered_channels([a for parent_of in parents.values() for a in parent_of])
    plans = []
    for root_id, parent_of in parents.items():
        plans.append(metering_plan(root_id, parent_of, [c for c in channels if c.asset_id in parent_of]))
    return EnergyScope(site.timezone, site.billing_anchor_day, [c.channel_id for c in channels], _merge(plans))


def asset_scope(asset: Asset) -> EnergyScope:
    return energy_scope(asset.site, [asset.id])


def site_scope(site: Site) -> EnergyScope:
    return energy_scope(site, list(Asset.objects.filter(site=site, parent=None).values_list("id", flat=True)))


def scope_energy(scope: EnergyScope, period: str, start: date | None = None, end: date | None = None, include_empty: bool = False) -> list[AssetPeriodEnergy]:
    """Figures per local period over the local dates [start, end) (by default every day with data);
    `include_empty` keeps the periods without data, with zero energy and coverage."""
    if start is None or end is None:
        span = data_span(scope.channel_ids)
        if span is None:
            return []
        start = start or span[0]
        end = end or span[1] + timedelta(days=1)
    periods, totals = period_totals(scope.channel_ids, scope.zone, period, start, end, scope.anchor_day)
    plan = scope.plan
    counted = plan.consumption or scope.channel_ids  # whose coverage says how complete a row is
    result = []
    for index, local in enumerate(periods):
        found = {c: totals[(c, index)] for c in scope.channel_ids if (c, index) in totals}
        if not found and not include_empty:
            continue
        energy = defaultdict(float, {c: figures.energy_wh for c, figures in found.items()})
        empty = PeriodTotals()
        result.append(
            AssetPeriodEnergy(
                start=local.local_start,
                label=local.label,
                seconds=local.seconds,
                consumption_wh=sum(energy[c] for c in plan.consumption),
                generation_wh=sum(energy[c] for c in plan.generation),
                export_wh=sum(energy[c] for c in plan.export),
                storage_wh=sum(energy[c] for c in plan.storage),
                unmetered_wh=sum(energy[main] - sum(energy[c] for c in subs) for main, subs in plan.unmetered.items()),
                coverage=min((found.get(c, empty).covered_seconds / local.seconds for c in counted), default=0.0),
                estimated_wh=sum(found.get(c, empty).estimated_wh for c in plan.consumption),
                by_channel={c: figures.energy_wh for c, figures in found.items()},
            )
        )
    return result


def asset_energy(asset: Asset, period: str, start: date | None = None, end: date | None = None, include_empty: bool = False) -> list[AssetPeriodEnergy]:
    return scope_energy(asset_scope(asset), period, start, end, include_empty)


def site_energy(site: Site, period: str, start: date | None = None, end: date | None = None, include_empty: bool = False) -> list[AssetPeriodEnergy]:
    """The site's energy: the asset rules applied to each of its root assets, added up."""
    return scope_energy(site_scope(site), period, start, end, include_empty)

"""Energy of an asset and its subtree per local period, by channel role, without double counting."""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from assets.metering import MeteredChannel, metering_plan
from assets.models import Asset, Channel
from assets.tree import subtree_parents

from .localtime import energy_by_local_period


@dataclass
class AssetPeriodEnergy:
    start: datetime
    consumption_wh: float = 0.0
    unmetered_wh: float = 0.0
    generation_wh: float = 0.0
    export_wh: float = 0.0
    storage_wh: float = 0.0
    by_channel: dict[int, float] = field(default_factory=dict)


def asset_energy(asset: Asset, period: str) -> list[AssetPeriodEnergy]:
    parent_of = subtree_parents(asset.id)
    channels = [
        MeteredChannel(channel_id, asset_id, role)
        for channel_id, asset_id, role in Channel.objects.filter(
            asset_id__in=parent_of, metric=Channel.Metric.ENERGY
        ).values_list("id", "asset_id", "role")
    ]
    plan = metering_plan(asset.id, parent_of, channels)
    periods: dict[datetime, AssetPeriodEnergy] = {}
    for item in energy_by_local_period([c.channel_id for c in channels], asset.site.timezone, period):
        periods.setdefault(item.start, AssetPeriodEnergy(item.start)).by_channel[item.channel_id] = item.energy_wh

    for figures in periods.values():
        energy = defaultdict(float, figures.by_channel)
        figures.consumption_wh = sum(energy[c] for c in plan.consumption)
        figures.generation_wh = sum(energy[c] for c in plan.generation)
        figures.export_wh = sum(energy[c] for c in plan.export)
        figures.storage_wh = sum(energy[c] for c in plan.storage)
        figures.unmetered_wh = sum(energy[main] - sum(energy[c] for c in subs) for main, subs in plan.unmetered.items())
    return [periods[start] for start in sorted(periods)]

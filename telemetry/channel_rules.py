"""Which energy rules apply to a channel: its own limits, the settings' defaults, and what its device's map declares."""

from django.conf import settings

from assets.models import Channel

from .decoders import compile_map
from .energy import COUNTER, INSTANT, Rules

# The metrics whose readings make energy buckets.
ENERGY_METRICS = (Channel.Metric.ENERGY, Channel.Metric.POWER)


def rules_for(metric: str, max_power_w: float | None, max_gap_s: float | None, sample: str | None, rollover: float | None) -> Rules:
    """`sample` and `rollover` as the parameter map declares them for the channel's quantity."""
    max_power_w = settings.ENERGY_DEFAULT_MAX_POWER_W if max_power_w is None else max_power_w
    if metric == Channel.Metric.ENERGY:
        return Rules(COUNTER, max_power_w=max_power_w, rollover_wh=rollover)
    return Rules(sample or INSTANT, max_power_w=max_power_w,
                 max_gap_s=settings.ENERGY_DEFAULT_MAX_GAP_S if max_gap_s is None else max_gap_s)


def channel_rules(channel_ids) -> dict[int, Rules]:
    """For stored channels, outside an ingest batch (a recompute): the map's quantity found by key, else by metric."""
    rules, compiled = {}, {}
    channels = Channel.objects.filter(id__in=list(channel_ids), metric__in=ENERGY_METRICS).select_related("device__device_model")
    for channel in channels:
        model = channel.device.device_model
        if model.pk not in compiled:
            compiled[model.pk] = compile_map(model.parameter_map)
        spec = compiled[model.pk]
        quantity = spec.channels.get(channel.key)
        if quantity is None or quantity.metric != channel.metric:
            quantity = next((q for q in [*spec.quantities.values(), *spec.channels.values()] if q.metric == channel.metric), None)
        rules[channel.pk] = rules_for(channel.metric, channel.max_power_w, channel.max_gap_s,
                                      quantity.sample if quantity else None, quantity.rollover if quantity else None)
    return rules

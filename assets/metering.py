"""Which channels make up an asset's energy, so that no sub-meter is counted twice under a main meter.

Plain Python: takes the subtree's parent links and its channels' roles, returns a plan.

- A main channel (site or panel incomer) measures everything on its asset and below.
- A sub-meter under a main meter is already inside that main's figure: it is shown,
  not added. A sub-meter with no main above it (within the subtree) is added.
- A main under another main (a sub-panel's incomer) is, for the outer main, one of its sub-meters.
- Unmetered = a main's energy minus its direct sub-meters (nested mains and the sub-meters not below one),
  for a main whose asset feeds other assets.
- Generation, export and storage are kept apart from consumption.
"""

from dataclasses import dataclass, field

MAIN, SUB_METER, GENERATION, EXPORT, STORAGE = "main", "sub_meter", "generation", "export", "storage"


@dataclass(frozen=True)
class MeteredChannel:
    channel_id: int
    asset_id: int
    role: str


@dataclass
class MeteringPlan:
    consumption: list[int] = field(default_factory=list)  # add these up for the subtree's consumption
    unmetered: dict[int, list[int]] = field(default_factory=dict)  # main -> its direct sub-meters
    generation: list[int] = field(default_factory=list)
    export: list[int] = field(default_factory=list)
    storage: list[int] = field(default_factory=list)


def metering_plan(root_id: int, parent_of: dict[int, int | None], channels: list[MeteredChannel]) -> MeteringPlan:
    """`parent_of` maps every asset of the subtree rooted at `root_id` to its parent.

    A main meter on an asset with nothing below it (a heat pump on its own supply)
    measures that asset itself: it has no unmetered remainder.
    """
    feeds_others = {parent for asset, parent in parent_of.items() if asset != root_id and parent is not None}
    mains_on: dict[int, list[int]] = {}
    for channel in channels:
        if channel.role == MAIN:
            mains_on.setdefault(channel.asset_id, []).append(channel.channel_id)

    def covering_main(asset_id: int, include_self: bool) -> int | None:
        """The nearest main channel on this asset (if asked) or above it, not looking past the subtree's root."""
        current = asset_id
        if not include_self:
            if asset_id == root_id:
                return None
            current = parent_of[asset_id]
        while True:
            if current in mains_on:
                return mains_on[current][0]
            if current == root_id:
                return None
            current = parent_of[current]

    plan = MeteringPlan()
    for channel in channels:
        if channel.role == GENERATION:
            plan.generation.append(channel.channel_id)
        elif channel.role == EXPORT:
            plan.export.append(channel.channel_id)
        elif channel.role == STORAGE:
            plan.storage.append(channel.channel_id)
        elif channel.role == MAIN:
            if channel.asset_id in feeds_others:
                plan.unmetered.setdefault(channel.channel_id, [])
            # A main above this one (two mains on one asset are side by side, not nested).
            above = covering_main(channel.asset_id, include_self=False)
            _count(plan, channel.channel_id, above)
        elif channel.role == SUB_METER:
            _count(plan, channel.channel_id, covering_main(channel.asset_id, include_self=True))
    return plan


def _count(plan: MeteringPlan, channel_id: int, covering_main: int | None) -> None:
    """Add the channel to consumption, or, under a main, to that main's sub-meters."""
    if covering_main is None:
        plan.consumption.append(channel_id)
    else:
        plan.unmetered.setdefault(covering_main, []).append(channel_id)

"""Subtree queries and asset-energy roll-up on a generated tree of 10,000 assets.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/iotwatt_bench .venv/bin/python bench/asset_tree.py

Builds (once per run, in a fresh organisation) a site with 10 buildings x 10 floors
x 10 panels x 9 circuits = 10,111 assets, a main meter on every panel and a
sub-meter on every circuit (10,000 channels), and one local day of 15-minute
buckets for each channel; then prints the median time of each query over 5 runs.
"""

import os
import statistics
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "iotwatt.settings")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402

from assets.models import Asset, AssetType, Channel, Device, DeviceModel, Organisation, Site  # noqa: E402
from assets.tree import ancestors, subtree, subtree_parents  # noqa: E402
from telemetry.asset_energy import asset_energy  # noqa: E402
from telemetry.parameter_maps import IOTWATT_NATIVE  # noqa: E402

SHAPE = [("building", 10), ("floor", 10), ("electrical_panel", 10), ("circuit", 9)]


def build_tree() -> tuple[Site, Asset]:
    run = int(time.time())
    organisation = Organisation.objects.create(name=f"Bench {run}", slug=f"bench-{run}")
    site = Site.objects.create(organisation=organisation, name="Bench campus", timezone="Europe/Berlin")
    types = {t.key: t for t in AssetType.objects.filter(organisation=None)}
    root = Asset.objects.create(site=site, asset_type=types["site"], name="Campus")
    level = [root]
    panels, circuits = [], []
    # Bulk inserts level by level: the bench measures queries, not 10,000 validated saves.
    for type_key, per_parent in SHAPE:
        level = Asset.objects.bulk_create(
            Asset(site=site, parent=parent, asset_type=types[type_key], name=f"{type_key} {parent.id}-{i}")
            for parent in level
            for i in range(per_parent)
        )
        if type_key == "electrical_panel":
            panels = level
        if type_key == "circuit":
            circuits = level
    model, _ = DeviceModel.objects.get_or_create(key="bench-meter", defaults={"name": "Bench meter", "parameter_map": IOTWATT_NATIVE})
    device = Device.objects.create(site=site, device_model=model, identifier=f"bench-{run}")
    channels = Channel.objects.bulk_create(
        [Channel(device=device, key=f"p{a.id}", metric="energy", role="main", asset=a) for a in panels]
        + [Channel(device=device, key=f"c{a.id}", metric="energy", role="sub_meter", asset=a) for a in circuits]
    )
    day_start = datetime(2024, 3, 31, 22, 0, tzinfo=timezone.utc)  # 2024-04-01 00:00 in Berlin
    with connection.cursor() as cursor, cursor.copy(
        "COPY telemetry_energybucket (channel_id, start, energy_wh, covered_seconds) FROM STDIN"
    ) as copy:
        for channel in channels:
            energy = 250.0 if channel.role == "main" else 20.0
            for q in range(96):
                copy.write_row((channel.id, day_start + timedelta(minutes=15 * q), energy, 900.0))
    print(f"built {Asset.objects.filter(site=site).count():,} assets, {len(channels):,} channels, {len(channels) * 96:,} buckets")
    return site, root


def timed(label: str, work, runs: int = 5) -> None:
    times, result = [], None
    for _ in range(runs):
        started = time.perf_counter()
        result = work()
        times.append(time.perf_counter() - started)
    print(f"{label:<58} median {statistics.median(times) * 1000:8.1f} ms   ({result})")


def main() -> None:
    call_command("migrate", verbosity=0)
    site, root = build_tree()
    building = root.children.first()
    leaf = Asset.objects.filter(site=site, asset_type__key="circuit").last()

    timed("subtree ids of the site (10,111 assets)", lambda: len(subtree_parents(root.id)))
    timed("subtree ids of one building (1,011 assets)", lambda: len(subtree_parents(building.id)))
    timed("subtree of one building as model objects", lambda: len(list(subtree(building))))
    timed("ancestors of a circuit", lambda: len(ancestors(leaf)))
    timed("(tree-queries, whole-site CTE) subtree of one building", lambda: len(list(Asset.objects.descendants(building, include_self=True).tree_filter(site=site.id))))
    timed("energy roll-up of the site, one local day", lambda: round(asset_energy(root, "day")[0].consumption_wh / 1000, 1))
    timed("energy roll-up of one building, one local day", lambda: round(asset_energy(building, "day")[0].consumption_wh / 1000, 1))


if __name__ == "__main__":
    main()

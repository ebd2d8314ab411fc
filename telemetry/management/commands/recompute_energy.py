import time

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from assets.models import Channel
from telemetry.channel_rules import ENERGY_METRICS, channel_rules
from telemetry.rollup import lock_channels, recompute_channel


class Command(BaseCommand):
    help = (
        "Rebuild energy buckets, days and reading flags from the stored readings, channel by channel: after "
        "changing a channel's limits (max power, max gap) or its map's sampling rule or rollover, or to repair."
    )

    def add_arguments(self, parser):
        parser.add_argument("--site", type=int, action="append", default=[], help="every energy and power channel of this site id")
        parser.add_argument("--channel", type=int, action="append", default=[], help="this channel id")
        parser.add_argument("--all", action="store_true", help="every energy and power channel")

    def handle(self, *args, **options):
        channels = Channel.objects.filter(metric__in=ENERGY_METRICS).order_by("id")
        if not options["all"]:
            if not options["site"] and not options["channel"]:
                raise CommandError("Say which channels: --site ID, --channel ID (each may repeat) or --all.")
            wanted = set(options["channel"])
            unknown = wanted - set(channels.filter(id__in=wanted).values_list("id", flat=True))
            if unknown:
                raise CommandError(f"No energy or power channel with id {', '.join(map(str, sorted(unknown)))}.")
            channels = channels.filter(id__in=wanted) | channels.filter(device__site_id__in=options["site"])
        ids = list(channels.values_list("id", flat=True))
        if not ids:
            raise CommandError("No energy or power channels there.")
        rules = channel_rules(ids)
        started = time.monotonic()
        buckets = 0
        for done, channel_id in enumerate(ids, 1):
            # A channel at a time: its lock holds off the ingest of that channel only, and briefly.
            with transaction.atomic():
                lock_channels([channel_id])
                buckets += recompute_channel(channel_id, rules[channel_id])
            self.stdout.write(f"[{done}/{len(ids)}] channel {channel_id}: {buckets} buckets so far, {time.monotonic() - started:.1f} s")
        self.stdout.write(self.style.SUCCESS(f"Rebuilt {len(ids)} channel(s), {buckets} buckets, in {time.monotonic() - started:.1f} s."))

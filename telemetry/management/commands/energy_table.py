from collections import defaultdict
from datetime import timezone

from django.core.management.base import BaseCommand, CommandError

from assets.models import Channel, Site
from telemetry.localtime import energy_by_local_period

FORMATS = {"day": "%Y-%m-%d %a", "month": "%Y-%m", "hour": "%Y-%m-%d %H:%M%z"}


class Command(BaseCommand):
    help = "Print a site's energy per local day, month or hour for each channel, in kWh."

    def add_arguments(self, parser):
        parser.add_argument("site", help="site id or name")
        parser.add_argument("--period", choices=sorted(FORMATS), action="append", dest="periods")

    def handle(self, *args, **options):
        site_ref = options["site"]
        site = Site.objects.filter(pk=int(site_ref)).first() if site_ref.isdigit() else Site.objects.filter(name=site_ref).first()
        if site is None:
            raise CommandError(f"No site {site_ref!r}. Sites: {', '.join(Site.objects.values_list('name', flat=True)) or 'none'}")
        channels = list(Channel.objects.filter(device__site=site, metric=Channel.Metric.ENERGY).order_by("id"))
        if not channels:
            raise CommandError(f"Site {site} has no energy channels.")
        for period in options["periods"] or ["day", "month"]:
            self.print_table(site, channels, period)

    def print_table(self, site, channels, period):
        # Keyed by the UTC instant: aware datetimes in one zone compare by wall time, so the
        # two 02:00 hours of a DST change would otherwise fall into one row.
        rows = defaultdict(dict)
        coverage = defaultdict(list)
        starts = {}
        for item in energy_by_local_period([c.id for c in channels], site.timezone, period):
            instant = item.start.astimezone(timezone.utc)
            starts[instant] = item.start
            rows[instant][item.channel_id] = item.energy_wh / 1000
            coverage[instant].append(item.coverage)
        label_width = len(FORMATS[period].replace("%Y", "0000").replace("%a", "Mon").replace("%z", "+0000")) + 2
        headers = [c.key for c in channels]
        widths = [max(10, len(h)) for h in headers]
        self.stdout.write(f"\nEnergy per local {period}, kWh — {site} ({site.timezone})")
        self.stdout.write(" " * label_width + "  ".join(h.rjust(w) for h, w in zip(headers, widths)) + "  coverage")
        for instant in sorted(rows):
            cells = [
                (f"{rows[instant][c.id]:.3f}" if c.id in rows[instant] else "—").rjust(w) for c, w in zip(channels, widths)
            ]
            share = min(coverage[instant])
            label = starts[instant].strftime(FORMATS[period])
            self.stdout.write(label.ljust(label_width) + "  ".join(cells) + f"  {share:7.1%}")

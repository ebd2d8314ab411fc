from django.core.management.base import BaseCommand

from telemetry.partitions import maintain_reading_storage


class Command(BaseCommand):
    help = (
        "Readings storage upkeep: create the monthly partitions of the coming months and drop those older than "
        "READINGS_RETENTION_DAYS (native PostgreSQL), or set the TimescaleDB compression and retention policies."
    )

    def add_arguments(self, parser):
        parser.add_argument("--keep-expired", action="store_true", help="create partitions ahead, drop nothing")

    def handle(self, *args, keep_expired=False, **options):
        report = maintain_reading_storage(drop_expired=not keep_expired)
        self.stdout.write(f"readings storage: {report['storage']}")
        for name in report.get("created", []):
            self.stdout.write(f"created {name}")
        for name in report.get("dropped", []):
            self.stdout.write(f"dropped {name}")
        for policy, interval in report.get("policies", {}).items():
            self.stdout.write(f"{policy}: {interval or 'off'}")

from django.apps import AppConfig
from django.db.models.signals import post_migrate


def prepare_reading_storage(sender, using, **kwargs):
    """After every migrate: the coming months' partitions exist, or the TimescaleDB policies follow the settings.

    Retention never drops a native partition here: that is left to the scheduled upkeep.
    """
    from .partitions import maintain_reading_storage

    maintain_reading_storage(drop_expired=False, using=using)


class TelemetryConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "telemetry"
    verbose_name = "Telemetry"

    def ready(self):
        post_migrate.connect(prepare_reading_storage, sender=self)

        from . import signals

        signals.connect()

from django.core.management.base import BaseCommand
from django.db import transaction

from assets.models import DeviceModel
from telemetry.parameter_maps import BUILT_IN_MAPS

NAMES = {
    "iotwatt_native": ("IotWatt native meter", "IotWatt"),
    "iotawatt_influx": ("IoTaWatt (InfluxDB upload)", "IoTaWatt"),
    "tasmota_sensor": ("Tasmota energy sensor", "Tasmota"),
    "shelly_gen2_switch": ("Shelly Gen2 switch (Plus 1PM, Pro 1PM ...)", "Shelly"),
    "shelly_pro_3em": ("Shelly Pro 3EM", "Shelly"),
    "shelly_em1": ("Shelly EM1", "Shelly"),
    "esphome_state": ("ESPHome sensor", "ESPHome"),
    "emonhub": ("OpenEnergyMonitor emonhub", "OpenEnergyMonitor"),
}


class Command(BaseCommand):
    help = (
        "Create or update the built-in device models (shared by every organisation) from the product's "
        "built-in parameter maps (telemetry/parameter_maps.py): Tasmota, Shelly, ESPHome, emonhub, IotWatt."
    )

    def handle(self, *args, **options):
        with transaction.atomic():
            for name, parameter_map in BUILT_IN_MAPS.items():
                title, manufacturer = NAMES.get(name, (name, ""))
                key = name.replace("_", "-")
                model = DeviceModel.objects.filter(organisation=None, key=key).first() or DeviceModel(organisation=None, key=key)
                created = model.pk is None
                model.name, model.manufacturer, model.parameter_map = title, manufacturer, parameter_map
                model.full_clean()
                model.save()
                self.stdout.write(f"{'created' if created else 'updated'} {key}: {title} (map version {model.map_version})")

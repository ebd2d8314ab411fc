"""The demo's device-parameter step: a load controller, simulated over MQTT, takes one change and refuses another."""

import time
from datetime import datetime

from django.db import transaction

from assets.models import Device, DeviceModel, Site
from control.changes import request_changes
from control.models import ChangeSet, DeviceConfiguration, DeviceParameter

CONTROLLER_PREFIX = "iotwatt-demo-controller-"
CONTROLLER_IDENTIFIER = f"{CONTROLLER_PREFIX}0001"  # the simulator names its devices prefix + number


def create_controller(site: Site) -> Device:
    model = DeviceModel.objects.get(key="iotwatt-native", organisation=None)
    device, _ = Device.objects.update_or_create(
        identifier=CONTROLLER_IDENTIFIER, defaults={"site": site, "device_model": model, "name": "Load controller", "tags": ["demo"]}
    )
    return device


def wait_until_heard(device: Device, since: datetime, timeout_s: float = 60) -> None:
    """Online, and its configuration report since `since` taken in: the changes below start from what it has now."""
    deadline = time.monotonic() + timeout_s
    while not (Device.objects.filter(pk=device.pk, online=True).exists()
               and DeviceConfiguration.objects.filter(device=device, reported_at__gte=since).exists()):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{device} did not come online; see .demo/logs/simulator.log and config-agent.log")
        time.sleep(0.2)


def change_and_wait(device: Device, values: dict, timeout_s: float = 60) -> ChangeSet | None:
    before = {row.key: row.reported for row in DeviceParameter.objects.filter(device=device)}
    started = time.monotonic()
    with transaction.atomic():
        change_set = request_changes(device, values)
    asked = ", ".join(f"{key} {before.get(key)!r} -> {value!r}" for key, value in values.items())
    if change_set is None:
        print(f"  {asked}: the device already has it")
        return None
    while ChangeSet.objects.filter(pk=change_set.pk, state__in=ChangeSet.OPEN).exists():
        if time.monotonic() - started > timeout_s:
            raise RuntimeError(f"no answer to version {change_set.version} in {timeout_s:.0f} s; see .demo/logs/")
        time.sleep(0.1)
    change_set.refresh_from_db()
    seconds = time.monotonic() - started
    print(f"  {asked}: {change_set.get_state_display()}, {seconds:.1f} s after the request (version {change_set.version})")
    for key, reason in change_set.answer.get("rejected", {}).items():
        print(f"    {key} refused: {reason}")
    return change_set

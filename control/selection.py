"""Which devices a user's bulk parameter change reaches: the admin's and the API's one rule.

A bulk change belongs to one organisation, so a selection that spans two is refused rather than
split; every device must be in an organisation where the user has a writing role. A selection by
device model, site or tag reaches only the devices the user may change.
"""

from django.db.models import QuerySet

from assets import tenancy
from assets.models import Device, Organisation

from .bulk import select_devices


class SelectionRefused(ValueError):
    """The selection cannot be changed as a whole; the message says why (a 400 in the API)."""


class SelectionNotWritable(PermissionError):
    """The devices are visible to the user but their role there does not allow changes (a 403)."""


def writable_selection(user, device_model=None, site=None, tag: str | None = None, device_ids=None) -> tuple[Organisation, QuerySet]:
    """The organisation and the devices chosen by every criterion given (all must hold)."""
    if device_model is None and site is None and not tag and device_ids is None:
        raise SelectionRefused("Choose the devices: a device model, a site, a tag or a list of devices.")
    devices = select_devices(tenancy.visible(Device.objects.all(), user), device_model, site, tag, device_ids)
    if device_ids is None:
        # Chosen by model, site or tag (a shared device model reaches every organisation the user sees): the
        # devices the user may change. Devices named one by one are refused below instead of quietly left out.
        changeable = select_devices(tenancy.writable(Device.objects.all(), user), device_model, site, tag)
        if not changeable.exists() and devices.exists():
            raise SelectionNotWritable("Your role does not allow changes to these devices.")
        devices = changeable
    organisation_ids = set(devices.order_by().values_list("site__organisation_id", flat=True).distinct())
    if not organisation_ids:
        raise SelectionRefused("No device matches this selection.")
    if len(organisation_ids) > 1:
        names = ", ".join(sorted(Organisation.objects.filter(pk__in=organisation_ids).values_list("name", flat=True)))
        raise SelectionRefused(
            f"The devices belong to {len(organisation_ids)} organisations ({names}); a bulk change is made in one "
            "organisation at a time: narrow the selection by site or device list."
        )
    (organisation_id,) = organisation_ids
    if not tenancy.can_write_in(user, organisation_id, Device):
        raise SelectionNotWritable("Your role in this organisation does not allow changes.")
    return Organisation.objects.get(pk=organisation_id), devices


def selection_record(device_model=None, site=None, tag: str | None = None, device_ids=None) -> dict:
    """How the devices were chosen, as the bulk change keeps it."""
    record = {"device_model": getattr(device_model, "pk", None), "site": getattr(site, "pk", None), "tag": tag or None,
              "devices": sorted(device_ids) if device_ids is not None else None}
    return {name: value for name, value in record.items() if value is not None}

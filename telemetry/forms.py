"""The adoption form: which device model and site a pending device becomes a device of."""

from django import forms
from django.core.exceptions import ValidationError

from assets import tenancy
from assets.models import Device, DeviceModel, Site

from .adoption import adoption_identifier
from .models import PendingDevice


class AdoptPendingDeviceForm(forms.Form):
    device_model = forms.ModelChoiceField(queryset=DeviceModel.objects.none(), help_text="Its topic patterns decide the device's identifier")
    site = forms.ModelChoiceField(queryset=Site.objects.none())
    name = forms.CharField(max_length=Device._meta.get_field("name").max_length, required=False)
    create_channels = forms.BooleanField(
        required=False, initial=True,
        help_text="Create a channel for every key and metric the kept payloads decode to under the model's map",
    )

    def __init__(self, *args, pending: PendingDevice, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.pending = pending
        # The same choices as registering a device by hand: the models the user may use (the shared
        # built-in ones and their organisations'), and the sites they may write in.
        self.fields["device_model"].queryset = tenancy.visible(DeviceModel.objects.all(), user).order_by("name")
        self.fields["site"].queryset = tenancy.writable(Site.objects.all(), user).order_by("name")
        matching_ids = [m["device_model_id"] for m in pending.matching_models if m.get("device_model_id")]
        if matching_ids and not self.is_bound:
            self.fields["device_model"].initial = matching_ids[0]

    def clean(self):
        cleaned = super().clean()
        device_model, site = cleaned.get("device_model"), cleaned.get("site")
        if device_model is None:
            return cleaned
        try:
            cleaned["identifier"] = adoption_identifier(self.pending, device_model)
        except ValidationError as exc:
            self.add_error("device_model", exc)
            return cleaned
        if Device.objects.filter(identifier=cleaned["identifier"]).exists():
            self.add_error("device_model", (
                f"A device {cleaned['identifier']!r} is registered already; use the action "
                "“Replay into registered devices” to ingest these messages into it."
            ))
        if site and device_model.organisation_id not in (None, site.organisation_id):
            self.add_error("device_model", "This device model belongs to another organisation than the site.")
        return cleaned

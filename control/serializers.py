"""REST API serializers of device parameters: definitions and states, change sets, the audit, bulk
changes with their preview and progress. Related objects are chosen among what the user may see
(assets.serializers.ScopedPrimaryKeyRelatedField): another organisation's id is "Invalid pk"."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.reverse import reverse

from assets.models import Device, DeviceModel, Site
from assets.serializers import JSONObjectField, ScopedPrimaryKeyRelatedField

from .bulk import progress
from .models import BulkChange, ChangeSet, DeviceParameter, ParameterEvent


class ValuesSerializer(serializers.Serializer):
    values = JSONObjectField(help_text='The parameters to set, by key: {"ct_ratio": 200}')

    def validate_values(self, values):
        if not values:
            raise serializers.ValidationError("Name at least one parameter.")
        return values


# --- one device ------------------------------------------------------------------------------------

class DefinitionSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=["integer", "number", "boolean", "string"])
    unit = serializers.CharField()
    minimum = serializers.FloatField(allow_null=True)
    maximum = serializers.FloatField(allow_null=True)
    choices = serializers.ListField(child=serializers.JSONField())
    default = serializers.JSONField(allow_null=True)
    writable = serializers.BooleanField()
    reboot = serializers.BooleanField(help_text="The device restarts to apply it")
    description = serializers.CharField()


class ParameterStateSerializer(serializers.Serializer):
    """A ParameterView (control/overview.py)."""

    key = serializers.CharField()
    definition = DefinitionSerializer(allow_null=True, help_text="Empty: the device model no longer defines this parameter")
    desired = serializers.JSONField(source="row.desired", default=None, allow_null=True)
    reported = serializers.JSONField(source="row.reported", default=None, allow_null=True)
    state = serializers.ChoiceField(source="row.state", choices=DeviceParameter.State.choices, default=None, allow_null=True,
                                    help_text="Empty: never set nor reported")
    reason = serializers.CharField(source="row.reason", default="", help_text="The device's reason for a refusal, or why it waits")
    change_set_version = serializers.IntegerField(source="row.change_set.version", default=None, allow_null=True)
    desired_at = serializers.DateTimeField(source="row.desired_at", default=None, allow_null=True)
    reported_at = serializers.DateTimeField(source="row.reported_at", default=None, allow_null=True)


class DeviceParametersSerializer(serializers.Serializer):
    """A DeviceOverview (control/overview.py)."""

    protocol = serializers.CharField(allow_null=True, help_text="Empty: the device model declares no parameters")
    last_version = serializers.IntegerField(source="versions.last_version", default=0, help_text="Version of the newest change set")
    reported_version = serializers.IntegerField(source="versions.reported_version", default=0,
                                                help_text="The change set version the device last said it has")
    parameters = ParameterStateSerializer(many=True)


class ChangeSetSerializer(serializers.ModelSerializer):
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = ChangeSet
        fields = [
            "id", "device", "version", "values", "state", "reason", "answer", "attempts", "messages_sent", "last_sent_at",
            "answered_at", "superseded_by", "bulk_change", "created_by", "created_at",
        ]
        read_only_fields = fields


class ChangeRequestedSerializer(serializers.Serializer):
    detail = serializers.CharField()
    change_set = ChangeSetSerializer(allow_null=True, help_text="Empty when nothing needed sending")


class ParameterEventSerializer(serializers.ModelSerializer):
    actor = serializers.SlugRelatedField(slug_field="username", read_only=True)
    change_set_version = serializers.IntegerField(source="change_set.version", default=None, allow_null=True, read_only=True)

    class Meta:
        model = ParameterEvent
        fields = ["id", "at", "kind", "key", "actor", "old_value", "new_value", "device_answer", "note", "change_set", "change_set_version"]
        read_only_fields = fields


# --- many devices ----------------------------------------------------------------------------------

class SelectionSerializer(ValuesSerializer):
    """The change and the devices it goes to: every criterion given must hold, at least one is needed."""

    device_model = ScopedPrimaryKeyRelatedField(queryset=DeviceModel.objects.all(), required=False)
    site = ScopedPrimaryKeyRelatedField(queryset=Site.objects.all(), required=False)
    tag = serializers.SlugField(required=False, max_length=50)
    devices = ScopedPrimaryKeyRelatedField(queryset=Device.objects.all(), many=True, required=False)

    CRITERIA = ("device_model", "site", "tag", "devices")

    def validate(self, attrs):
        attrs = super().validate(attrs)
        if not any(name in attrs for name in self.CRITERIA):
            raise serializers.ValidationError("Choose the devices: a device model, a site, a tag or a list of devices.")
        return attrs

    def criteria(self) -> dict:
        """The keyword arguments of control.selection.writable_selection."""
        data = self.validated_data
        devices = data.get("devices")
        return {
            "device_model": data.get("device_model"), "site": data.get("site"), "tag": data.get("tag"),
            "device_ids": [device.pk for device in devices] if devices is not None else None,
        }


class PlannedChangeSerializer(serializers.Serializer):
    key = serializers.CharField()
    current_desired = serializers.JSONField(allow_null=True)
    reported = serializers.JSONField(allow_null=True)
    new_value = serializers.JSONField()
    sends = serializers.BooleanField(source="needs_sending", help_text="False: the device has it, or it is on its way")


class PreviewRowSerializer(serializers.Serializer):
    device = serializers.IntegerField(source="device.pk")
    identifier = serializers.CharField(source="device.identifier")
    outcome = serializers.SerializerMethodField()
    changes = PlannedChangeSerializer(many=True)
    refused = serializers.DictField(child=serializers.CharField(), help_text="Each refused parameter with the rule it breaks")

    @extend_schema_field(serializers.ChoiceField(choices=["sends", "already_set", "refused"]))
    def get_outcome(self, row) -> str:
        return "refused" if row.refused else "sends" if row.sends else "already_set"


class PreviewSummarySerializer(serializers.Serializer):
    devices = serializers.IntegerField()
    to_send = serializers.IntegerField()
    already_set = serializers.IntegerField()
    refused = serializers.IntegerField()


class PreviewSerializer(serializers.Serializer):
    summary = PreviewSummarySerializer()
    rows = PreviewRowSerializer(many=True)


class ProgressSerializer(serializers.Serializer):
    """control.bulk.progress."""

    state = serializers.ChoiceField(choices=BulkChange.State.choices)
    devices = serializers.IntegerField()
    prepared = serializers.IntegerField(help_text="Devices whose change set is made")
    skipped = serializers.IntegerField()
    change_sets = serializers.IntegerField()
    by_state = serializers.DictField(child=serializers.IntegerField(), help_text="Change sets by state")
    answered = serializers.IntegerField()
    messages_sent = serializers.IntegerField()
    percent_done = serializers.FloatField()
    seconds = serializers.FloatField(allow_null=True, help_text="From the start to the last answer; empty until done")


class BulkChangeSerializer(serializers.ModelSerializer):
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = BulkChange
        fields = ["id", "organisation", "values", "selection", "device_ids", "state", "created_by", "created_at", "finished_at"]
        read_only_fields = fields


class BulkChangeProgressSerializer(BulkChangeSerializer):
    progress = serializers.SerializerMethodField()

    class Meta(BulkChangeSerializer.Meta):
        fields = [*BulkChangeSerializer.Meta.fields, "skipped", "progress"]
        read_only_fields = fields

    @extend_schema_field(ProgressSerializer)
    def get_progress(self, bulk) -> dict:
        return ProgressSerializer(progress(bulk)).data


class BulkChangeStartedSerializer(BulkChangeProgressSerializer):
    progress_url = serializers.SerializerMethodField()

    class Meta(BulkChangeProgressSerializer.Meta):
        fields = [*BulkChangeProgressSerializer.Meta.fields, "progress_url"]
        read_only_fields = fields

    def get_progress_url(self, bulk) -> str:
        return reverse("parameterchange-detail", args=[bulk.pk], request=self.context.get("request"))


class NothingToSendSerializer(serializers.Serializer):
    detail = serializers.CharField()
    summary = PreviewSummarySerializer()

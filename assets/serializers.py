"""REST API serializers: every related object is scoped to what the requesting user may see.

A related object of another organisation fails exactly like one that does not exist
("Invalid pk"), so the API never tells a user what other organisations have. The
model's own `clean()` holds the tree and schema rules; the serializers call it and
turn Django's ValidationError into DRF's field errors (400, never a 500).
"""

import copy

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema_field
from referencing.exceptions import Unresolvable
from rest_framework import serializers

from .attributes import attribute_errors, with_defaults
from .models import Asset, AssetType, Channel, Device, DeviceModel, Membership, Organisation, Site
from .json_values import json_problem
from .tenancy import ORGANISATION_PATH, organisation_ids, visible


class ScopedPrimaryKeyRelatedField(serializers.PrimaryKeyRelatedField):
    """A primary key chosen among the objects the requesting user may see."""

    def get_queryset(self):
        queryset = super().get_queryset()
        request = self.context.get("request")
        if queryset.model not in ORGANISATION_PATH:
            return queryset
        if request is None:
            return queryset.none()
        return visible(queryset, request.user)


class StorableJSONField(serializers.JSONField):
    """JSON that PostgreSQL can store: no NUL, no lone surrogate, no NaN/Infinity, not absurdly deep."""

    def to_internal_value(self, data):
        data = super().to_internal_value(data)
        problem = json_problem(data)
        if problem:
            raise serializers.ValidationError(f"The value {problem}.")
        return data


@extend_schema_field({"type": "object", "additionalProperties": True})
class JSONObjectField(StorableJSONField):
    """A JSON object (not any JSON value)."""

    def to_internal_value(self, data):
        data = super().to_internal_value(data)
        if not isinstance(data, dict):
            raise serializers.ValidationError("Expected a JSON object.")
        return data


class TenantModelSerializer(serializers.ModelSerializer):
    serializer_related_field = ScopedPrimaryKeyRelatedField
    # Fields fixed at creation: changing them would move the object (and what hangs on it) elsewhere.
    immutable_fields: tuple[str, ...] = ()

    def build_standard_field(self, field_name, model_field):
        field_class, field_kwargs = super().build_standard_field(field_name, model_field)
        if field_class is serializers.JSONField:
            field_class = StorableJSONField
        return field_class, field_kwargs

    def current(self, attrs, name):
        """The value the object will have: the submitted one, else the stored one."""
        if name in attrs:
            return attrs[name]
        return getattr(self.instance, name, None) if self.instance is not None else None

    def validate(self, attrs):
        attrs = super().validate(attrs)
        if self.instance is not None:
            changed = {
                name: ["This cannot be changed once the object exists."]
                for name in self.immutable_fields
                if name in attrs and attrs[name] != getattr(self.instance, name)
            }
            if changed:
                raise serializers.ValidationError(changed)
        # Where the object would belong is settled now: a user without the right there is refused (403)
        # before the cross-object rules below say anything about the objects they chose.
        view = self.context.get("view")
        if view is not None and hasattr(view, "check_target"):
            view.check_target(self.instance, attrs)
        return attrs

    def candidate(self, attrs):
        """An unsaved copy of the object with the submitted values, for the model's clean()."""
        model = self.Meta.model
        instance = copy.copy(self.instance) if self.instance is not None else model()
        many_to_many = {f.name for f in model._meta.many_to_many}  # set on a saved object only
        for name, value in attrs.items():
            if name not in many_to_many:
                setattr(instance, name, value)
        return instance

    def model_clean(self, attrs):
        try:
            self.candidate(attrs).clean()
        except DjangoValidationError as exc:
            raise serializers.ValidationError(serializers.as_serializer_error(exc)) from exc


class OrganisationSerializer(TenantModelSerializer):
    class Meta:
        model = Organisation
        fields = ["id", "name", "slug"]


class MembershipSerializer(TenantModelSerializer):
    # Colleagues only: an organisation admin adds people who already share an organisation with them,
    # so the field reveals no other user names (a stranger reads as "does not exist").
    user = serializers.SlugRelatedField(slug_field="username", queryset=get_user_model().objects.none())
    immutable_fields = ("user", "organisation")

    class Meta:
        model = Membership
        fields = ["id", "user", "organisation", "role"]

    def get_fields(self):
        fields = super().get_fields()
        request = self.context.get("request")
        users = get_user_model().objects.all()
        if request is None:
            users = users.none()
        elif not request.user.is_superuser:
            users = users.filter(memberships__organisation__in=organisation_ids(request.user)).distinct()
        fields["user"].queryset = users
        return fields

    def validate(self, attrs):
        attrs = super().validate(attrs)
        instance = self.instance
        if instance is not None and instance.role == Membership.Role.ADMIN and attrs.get("role", instance.role) != instance.role:
            if not other_admins(instance).exists():
                raise serializers.ValidationError({"role": ["The organisation's last admin cannot step down."]})
        return attrs


def other_admins(membership: Membership):
    return Membership.objects.filter(organisation_id=membership.organisation_id, role=Membership.Role.ADMIN).exclude(pk=membership.pk)


class SiteSerializer(TenantModelSerializer):
    immutable_fields = ("organisation",)

    class Meta:
        model = Site
        fields = ["id", "organisation", "name", "timezone", "billing_anchor_day", "demand_interval_minutes"]


def same_organisation_or_shared(owner_id, organisation_id) -> bool:
    return owner_id is None or owner_id == organisation_id


class AssetTypeSerializer(TenantModelSerializer):
    attribute_schema = JSONObjectField(required=False, help_text=AssetType._meta.get_field("attribute_schema").help_text)
    immutable_fields = ("organisation",)

    class Meta:
        model = AssetType
        fields = ["id", "key", "name", "organisation", "description", "can_be_root", "allowed_parents", "attribute_schema"]
        extra_kwargs = {"organisation": {"required": False}}

    def validate(self, attrs):
        attrs = super().validate(attrs)
        organisation = self.current(attrs, "organisation")
        organisation_id = organisation.id if organisation else None
        foreign = [t.pk for t in attrs.get("allowed_parents", []) if not same_organisation_or_shared(t.organisation_id, organisation_id)]
        if foreign:
            raise serializers.ValidationError(
                {"allowed_parents": [f"Asset type {pk} belongs to another organisation." for pk in foreign]}
            )
        self.model_clean(attrs)
        return attrs


class AssetSerializer(TenantModelSerializer):
    attributes = JSONObjectField(
        required=False,
        help_text="Validated against the asset type's attribute_schema; missing attributes get their schema default.",
    )

    class Meta:
        model = Asset
        fields = ["id", "site", "parent", "asset_type", "name", "attributes", "tags"]

    def validate(self, attrs):
        """Attributes are checked here to report each by its path; every other rule (tree, site,
        the type's organisation) is the model's clean()."""
        attrs = super().validate(attrs)
        asset_type = self.current(attrs, "asset_type")
        attributes = with_defaults(asset_type.attribute_schema, self.current(attrs, "attributes") or {})
        errors = {}
        try:
            problems = attribute_errors(asset_type.attribute_schema, attributes)
        except Unresolvable as exc:
            raise serializers.ValidationError(
                {"asset_type": [f"The asset type's attribute schema cannot be evaluated: {exc}"]}
            ) from exc
        if problems:
            errors["attributes"] = attribute_error_detail(problems)
        attrs["attributes"] = attributes

        try:
            self.candidate(attrs).clean()
        except DjangoValidationError as exc:
            for name, messages in serializers.as_serializer_error(exc).items():
                if name != "attributes":  # reported above, by attribute
                    errors.setdefault(name, messages)
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


def attribute_error_detail(problems: dict[str, list[str]]) -> dict | list:
    """{"rated_power_kw": ["-5 is less than the minimum of 0"]}; problems of the object itself as a list."""
    if set(problems) == {""}:
        return problems[""]
    return {(path or "non_field_errors"): messages for path, messages in problems.items()}


class DeviceModelSerializer(TenantModelSerializer):
    parameter_map = JSONObjectField(help_text="How the decoder reads this model's payloads; see telemetry/decoders.py.")
    map_version = serializers.IntegerField(read_only=True, help_text="Number of the current map; every saved map is kept")
    immutable_fields = ("organisation",)

    class Meta:
        model = DeviceModel
        fields = ["id", "key", "name", "organisation", "manufacturer", "parameter_map", "map_version"]
        extra_kwargs = {"organisation": {"required": False}}

    def create(self, validated_data):
        instance = DeviceModel(**validated_data)
        instance._changed_by = self.context["request"].user  # recorded with the map version
        instance.save()
        return instance

    def update(self, instance, validated_data):
        instance._changed_by = self.context["request"].user
        return super().update(instance, validated_data)

    def validate(self, attrs):
        attrs = super().validate(attrs)
        self.model_clean(attrs)  # validate_parameter_map: ParameterMapError for any malformed map
        return attrs


class DeviceSerializer(TenantModelSerializer):
    class Meta:
        model = Device
        fields = ["id", "site", "device_model", "identifier", "name", "tags", "online", "status_changed_at", "last_seen_at"]
        read_only_fields = ["online", "status_changed_at", "last_seen_at"]  # the ingest writes them, never a client

    def validate(self, attrs):
        attrs = super().validate(attrs)
        site = self.current(attrs, "site")
        if self.instance is not None and site.pk != self.instance.site_id:
            if self.instance.channels.filter(asset__isnull=False).exclude(asset__site=site).exists():
                raise serializers.ValidationError(
                    {"site": ["Channels of this device measure assets of its current site; detach them first."]}
                )
        self.model_clean(attrs)  # the device model must be shared or the site's organisation's
        return attrs


class ChannelSerializer(TenantModelSerializer):
    unit = serializers.CharField(read_only=True, help_text="Base unit of the stored values (Wh or W)")

    class Meta:
        model = Channel
        fields = ["id", "device", "key", "metric", "unit", "role", "asset", "name", "max_power_w", "max_gap_s"]

    def validate(self, attrs):
        attrs = super().validate(attrs)
        self.model_clean(attrs)  # the asset must be at the device's site
        return attrs


class LocalDateTimeField(serializers.DateTimeField):
    """An aware datetime shown with its own UTC offset (the site's), not turned into the server's zone."""

    def to_representation(self, value):
        return value.isoformat()

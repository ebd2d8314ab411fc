"""The things we measure: tenants, their sites, the asset tree, and the devices and channels on it."""

import json
import zoneinfo

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models, transaction
from tree_queries.models import TreeNode

from .attributes import EMPTY_SCHEMA, AttributeSchemaError, attribute_errors, check_schema, with_defaults
from .json_values import json_problem


# Names zoneinfo lists that are not places: "localtime" follows the server's clock.
NOT_SITE_ZONES = {"localtime", "Factory", "posixrules"}


def validate_timezone(name: str) -> None:
    if name not in zoneinfo.available_timezones() or name in NOT_SITE_ZONES:
        raise ValidationError(f"{name!r} is not an IANA time zone name (for example Europe/Berlin).")


class Organisation(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(unique=True)

    def __str__(self):
        return self.name


class Membership(models.Model):
    """A user's role in one organisation; users see only their organisations' objects."""

    class Role(models.TextChoices):
        VIEWER = "viewer", "Viewer (read only)"
        OPERATOR = "operator", "Operator (reads and writes assets, devices and channels)"
        ADMIN = "admin", "Admin (operator, and manages the organisation)"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)

    class Meta:
        unique_together = [("user", "organisation")]

    def __str__(self):
        return f"{self.user} — {self.organisation} ({self.role})"


class Site(models.Model):
    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="sites")
    name = models.CharField(max_length=200)
    # Local hours, days and months of every figure of this site are cut in this zone.
    timezone = models.CharField(max_length=64, validators=[validate_timezone], help_text="IANA name, e.g. Europe/Berlin")
    billing_anchor_day = models.PositiveSmallIntegerField(
        default=1, validators=[MinValueValidator(1), MaxValueValidator(31)],
        help_text="Day of the month a billing period starts (local midnight); in a month without that day, its last day",
    )
    demand_interval_minutes = models.PositiveSmallIntegerField(
        default=15, choices=[(15, "15 minutes"), (30, "30 minutes"), (60, "60 minutes")],
        help_text="The utility's demand interval: demand is the average power over each such interval",
    )

    class Meta:
        unique_together = [("organisation", "name")]

    def __str__(self):
        return self.name

    def save(self, *args, **kwargs):
        validate_timezone(self.timezone)
        super().save(*args, **kwargs)


def empty_attribute_schema() -> dict:
    return dict(EMPTY_SCHEMA)


class AssetType(models.Model):
    """A kind of asset, defined as data: where it may sit in the tree and which attributes it has."""

    key = models.SlugField(help_text="Unique within its organisation (or among the standard types)")
    name = models.CharField(max_length=200)
    organisation = models.ForeignKey(
        Organisation, null=True, blank=True, on_delete=models.CASCADE, related_name="asset_types",
        help_text="Empty for the standard types every organisation shares",
    )
    description = models.TextField(blank=True)
    can_be_root = models.BooleanField(default=False, help_text="May stand at the top of a site's tree")
    allowed_parents = models.ManyToManyField(
        "self", symmetrical=False, blank=True, related_name="allowed_children", help_text="Types this type may sit under"
    )
    attribute_schema = models.JSONField(
        default=empty_attribute_schema,
        help_text='JSON Schema of the attributes; a property may carry "unit" and "default".',
    )

    class Meta:
        ordering = ["name"]
        # Per organisation, so a taken key never tells one tenant what another has.
        constraints = [
            models.UniqueConstraint(fields=["organisation", "key"], name="asset_type_key_per_organisation", nulls_distinct=False)
        ]

    def __str__(self):
        return self.name

    def clean(self):
        problem = json_problem(self.attribute_schema)
        if problem:
            raise ValidationError({"attribute_schema": f"The schema {problem}."})
        try:
            check_schema(self.attribute_schema)
        except AttributeSchemaError as exc:
            raise ValidationError({"attribute_schema": str(exc)}) from exc


class Asset(TreeNode):
    """A node of a site's tree: building, panel, circuit, load..."""

    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="assets")
    # RESTRICT: a type in use cannot be deleted alone, but goes with its organisation.
    asset_type = models.ForeignKey(AssetType, on_delete=models.RESTRICT, related_name="assets")
    name = models.CharField(max_length=200)
    attributes = models.JSONField(default=dict, blank=True)
    tags = ArrayField(models.CharField(max_length=64), default=list, blank=True)

    class Meta:
        indexes = [models.Index(fields=["site", "parent"])]

    def __str__(self):
        return self.name

    def clean(self):
        from .tree import ancestor_ids  # the tree queries need this module's models

        errors = {}
        if self.pk and self.site_id and Asset.objects.filter(pk=self.pk).exclude(site_id=self.site_id).exists():
            errors["site"] = "An asset stays in its site; create it again in the other site instead."
        if self.asset_type_id and self.site_id and self.asset_type.organisation_id not in (None, self.site.organisation_id):
            errors["asset_type"] = "This asset type belongs to another organisation."
        if self.parent_id:
            parent = self.parent
            if self.pk and (self.parent_id == self.pk or self.pk in ancestor_ids(self.parent_id)):
                errors["parent"] = "An asset cannot be moved under itself or one of its own descendants."
            elif parent.site_id != self.site_id:
                errors["parent"] = "The parent belongs to another site."
            elif self.asset_type_id and not self.asset_type.allowed_parents.filter(pk=parent.asset_type_id).exists():
                errors["parent"] = f"A {self.asset_type} cannot sit under a {parent.asset_type}."
        elif self.asset_type_id and not self.asset_type.can_be_root:
            errors["parent"] = f"A {self.asset_type} needs a parent."
        problem = json_problem(self.attributes)
        if problem:
            raise ValidationError({"attributes": f"The attributes {problem}."})
        if self.pk and self.asset_type_id:
            # A new type must still be an allowed parent of every child.
            misplaced = [
                child.name for child in self.children.select_related("asset_type")
                if not child.asset_type.allowed_parents.filter(pk=self.asset_type_id).exists()
            ]
            if misplaced:
                errors["asset_type"] = f"{', '.join(misplaced[:5])} cannot sit under a {self.asset_type}; move them first."
        if self.asset_type_id:
            self.attributes = with_defaults(self.asset_type.attribute_schema, self.attributes)
            problems = attribute_errors(self.asset_type.attribute_schema, self.attributes)
            if problems:
                errors["attributes"] = [f"{path or 'attributes'}: {'; '.join(messages)}" for path, messages in problems.items()]
        if errors:
            raise ValidationError(errors)

    def save(self, *args, **kwargs):
        """Every save keeps the tree valid: the site's row lock serialises moves, so two
        concurrent moves cannot build a cycle that neither would alone."""
        with transaction.atomic():
            Site.objects.select_for_update().filter(pk=self.site_id).exists()
            self.clean()
            super().save(*args, **kwargs)


class DeviceModel(models.Model):
    """A kind of device, and how to read its payloads.

    `parameter_map` tells the decoder where each value sits in a payload and in
    which unit it comes; see telemetry/decoders.py for the format.
    """

    key = models.SlugField(help_text="Unique within its organisation (or among the built-in models)")
    name = models.CharField(max_length=200)
    organisation = models.ForeignKey(
        Organisation, null=True, blank=True, on_delete=models.CASCADE, related_name="device_models",
        help_text="Empty for the built-in models every organisation shares",
    )
    manufacturer = models.CharField(max_length=200, blank=True)
    parameter_map = models.JSONField(default=dict)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organisation", "key"], name="device_model_key_per_organisation", nulls_distinct=False)
        ]

    def __str__(self):
        return self.name

    def clean(self):
        from telemetry.decoders import ParameterMapError, validate_parameter_map

        problem = json_problem(self.parameter_map)
        if problem:
            raise ValidationError({"parameter_map": f"The parameter map {problem}."})
        try:
            validate_parameter_map(self.parameter_map)
        except ParameterMapError as exc:
            raise ValidationError({"parameter_map": str(exc)}) from exc
        if self.pk:
            devices = [(pk, identifier, self.parameter_map) for pk, identifier in self.devices.values_list("pk", "identifier")]
            if topic_conflicts(devices):
                raise ValidationError({"parameter_map": "With these topics a device of this model would receive another device's messages."})

    def save(self, *args, **kwargs):
        """Every map a model has had is kept as a numbered version; `_changed_by` (set by the admin and
        the API before saving) says who saved it."""
        self.__dict__.pop("latest_map_version", None)  # a list's annotation, stale once saved
        with transaction.atomic():
            super().save(*args, **kwargs)
            update_fields = kwargs.get("update_fields")
            if update_fields is not None and "parameter_map" not in update_fields:
                return  # the map in memory was not saved
            latest = self.map_versions.order_by("-version").first()
            # Compared as JSON: in Python True == 1, but a map that says true where it said 1 changed.
            if latest is None or json.dumps(latest.parameter_map, sort_keys=True) != json.dumps(self.parameter_map, sort_keys=True):
                ParameterMapVersion.objects.create(
                    device_model=self,
                    version=(latest.version + 1) if latest else 1,
                    parameter_map=self.parameter_map,
                    saved_by=getattr(self, "_changed_by", None),
                )

    @property
    def map_version(self) -> int | None:
        """Lists annotate it (`with_map_version`): one query for the page, not one per model."""
        if hasattr(self, "latest_map_version"):
            return self.latest_map_version
        latest = self.map_versions.order_by("-version").first()
        return latest.version if latest else None

    @staticmethod
    def with_map_version(queryset):
        return queryset.annotate(latest_map_version=models.Max("map_versions__version"))


class ParameterMapVersion(models.Model):
    """One parameter map a device model had, as it was saved: what decoded its devices' payloads when."""

    device_model = models.ForeignKey(DeviceModel, on_delete=models.CASCADE, related_name="map_versions")
    version = models.PositiveIntegerField()
    parameter_map = models.JSONField()
    saved_at = models.DateTimeField(auto_now_add=True)
    saved_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["device_model", "-version"]
        constraints = [models.UniqueConstraint(fields=["device_model", "version"], name="one_map_version_number_per_model")]

    def __str__(self):
        return f"{self.device_model} map v{self.version}"


def topic_conflicts(candidates: list[tuple[int | None, str, dict]]) -> bool:
    """Would any (device pk, identifier, parameter map) receive topics another device already receives?

    Topic patterns are operator data, so without this check one organisation could
    register a device whose topics are another's and take its readings.
    """
    from telemetry.decoders import claimed_topics, topics_overlap

    own = {pk for pk, _, _ in candidates if pk}
    others = Device.objects.exclude(pk__in=own).values_list("identifier", "device_model__parameter_map")
    claims = [claimed_topics(parameter_map, identifier) for identifier, parameter_map in others]
    return any(
        topics_overlap(claimed_topics(parameter_map, identifier), claim)
        for _, identifier, parameter_map in candidates
        for claim in claims
    )


class Device(models.Model):
    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="devices")
    device_model = models.ForeignKey(DeviceModel, on_delete=models.RESTRICT, related_name="devices")
    # The identity the device uses in its MQTT topics.
    identifier = models.CharField(max_length=128, unique=True)
    name = models.CharField(max_length=200, blank=True)
    tags = ArrayField(
        models.SlugField(max_length=50), default=list, blank=True,
        help_text="Free labels to choose devices by (bulk parameter changes), e.g. floor-3, pilot",
    )
    # Written by the ingest only (telemetry/ingest.py), from the device's status topic and its messages.
    online = models.BooleanField(
        null=True, default=None, editable=False,
        help_text="From the device's status topic (retained, its last will says offline); empty: not known yet",
    )
    status_changed_at = models.DateTimeField(null=True, editable=False, help_text="When the status last changed")
    # The arrival of the newest status message applied: a status message that arrived earlier never
    # overwrites it, even when it reaches the database later (another bridge, a retried batch).
    status_reported_at = models.DateTimeField(null=True, editable=False)
    last_seen_at = models.DateTimeField(null=True, editable=False, help_text="Arrival of the device's last message of any kind")

    class Meta:
        indexes = [GinIndex(fields=["tags"], name="device_tags")]

    def __str__(self):
        return self.name or self.identifier

    def clean(self):
        if self.device_model_id and self.site_id and self.device_model.organisation_id not in (None, self.site.organisation_id):
            raise ValidationError({"device_model": "This device model belongs to another organisation."})
        if self.device_model_id and self.identifier and topic_conflicts([(self.pk, self.identifier, self.device_model.parameter_map)]):
            raise ValidationError({"identifier": "Another device already receives messages on these topics."})


class Channel(models.Model):
    """One measured quantity of one asset, as one device reports it."""

    class Role(models.TextChoices):
        # How the channel adds up in an asset's energy; see assets/metering.py.
        MAIN = "main", "Main (site or panel incomer)"
        SUB_METER = "sub_meter", "Sub-meter"
        GENERATION = "generation", "Generation"
        EXPORT = "export", "Export"
        STORAGE = "storage", "Storage"

    class Metric(models.TextChoices):
        ENERGY = "energy", "Energy, cumulative counter (Wh)"
        POWER = "power", "Active power (W)"
        VOLTAGE = "voltage", "Voltage (V)"
        CURRENT = "current", "Current (A)"
        REACTIVE_POWER = "reactive_power", "Reactive power (var)"
        APPARENT_POWER = "apparent_power", "Apparent power (VA)"
        FREQUENCY = "frequency", "Frequency (Hz)"
        POWER_FACTOR = "power_factor", "Power factor"

    # The same table as telemetry.formats.units.BASE_UNITS, where decoders convert into these units.
    BASE_UNITS = {
        Metric.ENERGY: "Wh",
        Metric.POWER: "W",
        Metric.VOLTAGE: "V",
        Metric.CURRENT: "A",
        Metric.REACTIVE_POWER: "var",
        Metric.APPARENT_POWER: "VA",
        Metric.FREQUENCY: "Hz",
        Metric.POWER_FACTOR: "",  # dimensionless
    }

    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="channels")
    key = models.CharField(max_length=128, help_text="The channel's name in the device's payload")
    metric = models.CharField(max_length=32, choices=Metric.choices)
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.SUB_METER)
    asset = models.ForeignKey(Asset, null=True, blank=True, on_delete=models.SET_NULL, related_name="channels")
    name = models.CharField(max_length=200, blank=True)
    max_power_w = models.FloatField(
        null=True, blank=True, validators=[MinValueValidator(0.0)],
        help_text="Plausible maximum power (W): a counter step implying more is a spike, a power sample above it is refused. "
        "Empty: ENERGY_DEFAULT_MAX_POWER_W",
    )
    max_gap_s = models.FloatField(
        null=True, blank=True, validators=[MinValueValidator(1.0)],
        help_text="Longest time between two power samples that is still integrated (s); a longer gap lowers the "
        "coverage instead. Empty: ENERGY_DEFAULT_MAX_GAP_S",
    )

    class Meta:
        unique_together = [("device", "key", "metric")]

    def __str__(self):
        return self.name or f"{self.device} {self.key} {self.metric}"

    def clean(self):
        if self.asset_id and self.device_id and self.asset.site_id != self.device.site_id:
            raise ValidationError({"asset": "The asset is on another site than the device."})
        if self.pk and self.readings.exists() and Channel.objects.filter(pk=self.pk).exclude(metric=self.metric).exists():
            raise ValidationError({"metric": "The channel has readings in its metric; create a new channel instead."})

    @property
    def unit(self) -> str:
        """Stored values are always in this base unit; decoders convert on the way in."""
        return self.BASE_UNITS[self.metric]

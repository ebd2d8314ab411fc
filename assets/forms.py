"""Admin forms: asset attributes as real form fields built from the asset type's JSON Schema.

The type decides the fields, so an asset form class is made per type
(`asset_form_for_type`). Each schema property becomes one field (label with
its unit, default as initial, description as help text); the values are
checked with `assets.attributes.attribute_errors` and each problem is shown on
the field of its attribute.
"""

import json
import re
from collections import OrderedDict

from django import forms
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.forms.models import ModelChoiceIterator

from .attributes import attribute_errors, with_defaults
from .models import Asset, AssetType, Channel, Device, DeviceModel, Membership

ATTRIBUTE_PREFIX = "attr_"
# What TreeNode.clean says for a cycle; it names no field, but it is about the parent.
TREE_CYCLE_MESSAGE = "A node cannot be made a descendant of itself."


# --- attribute fields from a JSON Schema -----------------------------------------------------

def _unit_token(unit: str) -> str:
    return re.sub(r"[^0-9a-z]", "", unit.lower().replace("²", "2").replace("³", "3"))


def attribute_label(name: str, spec: dict) -> str:
    """`rated_power_kw` with unit kW -> "Rated power (kW)"; a schema `title` wins over the name."""
    unit = spec.get("unit")
    title = spec.get("title")
    if not title:
        words = [w for w in name.split("_") if w]
        if unit and len(words) > 1 and words[-1].lower() == _unit_token(unit):
            words = words[:-1]
        title = " ".join(words).capitalize() or name
    return f"{title} ({unit})" if unit else title


def _json_type(spec: dict) -> str | None:
    kind = spec.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    if kind is None and "enum" in spec and spec["enum"]:
        sample = spec["enum"][0]
        kind = {bool: "boolean", int: "integer", float: "number", str: "string"}.get(type(sample))
    return kind


def _number(value):
    """A JSON number from form input: integral values stay integers (400, not 400.0)."""
    if isinstance(value, str):
        value = float(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _display(value):
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def attribute_field(name: str, spec: dict, required: bool) -> forms.Field:
    """One form field for one schema property."""
    if not isinstance(spec, dict):
        spec = {}
    kind = _json_type(spec)
    options = {"label": attribute_label(name, spec), "help_text": spec.get("description", ""), "required": required}
    if "default" in spec:
        options["initial"] = _display(spec["default"])
    enum = spec.get("enum")
    if enum and kind in {"string", "integer", "number"}:
        coerce = {"integer": int, "number": _number, "string": str}[kind]
        choices = [("", "---------")] + [(str(_display(v)), str(_display(v))) for v in enum]
        if "initial" in options:
            options["initial"] = str(options["initial"])
        return forms.TypedChoiceField(choices=choices, coerce=coerce, empty_value=None, **options)
    if kind == "boolean":
        options["required"] = False  # unchecked is a value (False), not a missing one
        return forms.BooleanField(**options)
    if kind == "integer":
        minimum, maximum = spec.get("minimum"), spec.get("maximum")
        if isinstance(spec.get("exclusiveMinimum"), (int, float)):
            minimum = int(spec["exclusiveMinimum"]) + 1
        if isinstance(spec.get("exclusiveMaximum"), (int, float)):
            maximum = int(spec["exclusiveMaximum"]) - 1
        return forms.IntegerField(min_value=minimum, max_value=maximum, **options)
    if kind == "number":
        # Exclusive bounds are left to the schema check, which reports them on this field.
        return forms.FloatField(min_value=spec.get("minimum"), max_value=spec.get("maximum"), **options)
    if kind == "string":
        return forms.CharField(max_length=spec.get("maxLength"), min_length=spec.get("minLength"), **options)
    # Arrays, objects and anything else: JSON text, still checked against the schema.
    return forms.JSONField(**options)


def attribute_fields(schema: dict) -> "OrderedDict[str, tuple[str, forms.Field]]":
    """form field name -> (attribute name, field), in the schema's order."""
    required = list(schema.get("required", []) or [])
    properties = schema.get("properties") or {}

    def order(item):
        # PostgreSQL's jsonb does not keep the schema's key order, so the order is made:
        # an explicit "propertyOrder" first, then the required attributes, then by label.
        name, spec = item
        spec = spec if isinstance(spec, dict) else {}
        explicit = spec.get("propertyOrder")
        return (
            explicit if isinstance(explicit, (int, float)) else float("inf"),
            required.index(name) if name in required else len(required),
            attribute_label(name, spec).lower(),
        )

    fields = OrderedDict()
    for name, spec in sorted(properties.items(), key=order):
        fields[ATTRIBUTE_PREFIX + name] = (name, attribute_field(name, spec, name in required))
    return fields


# --- choosing assets: grouped by site, labelled by their path --------------------------------

class AssetTreeChoiceIterator(ModelChoiceIterator):
    """Assets grouped by site, in tree order, each labelled with its path from the root."""

    def __iter__(self):
        if self.field.empty_label is not None:
            yield ("", self.field.empty_label)
        assets = self.queryset.with_tree_fields().order_siblings_by("name").select_related("site").order_by("tree_ordering")
        assets = list(assets)
        names = {asset.pk: asset.name for asset in assets}
        groups: dict[tuple, list] = {}
        for asset in assets:  # depth first: each parent right above its children
            path = [names.get(pk, "…") for pk in asset.tree_path]
            if len(path) > 1 and path[0] == asset.site.name:
                path = path[1:]  # the site's own root asset: already the group's title
            path = " › ".join(path)
            groups.setdefault((asset.site.name, asset.site_id), []).append((self.choice(asset)[0], path))
        for (site_name, _), choices in sorted(groups.items()):
            yield (site_name, choices)


class AssetChoiceField(forms.ModelChoiceField):
    iterator = AssetTreeChoiceIterator


# --- the asset form --------------------------------------------------------------------------

class AssetForm(forms.ModelForm):
    """Site, parent, type, name, tags; the attributes come as one field each (see asset_form_for_type)."""

    # The type whose attribute fields the page showed; if the type was changed, the
    # operator first sees the new type's fields before anything is saved.
    attributes_type = forms.CharField(widget=forms.HiddenInput, required=False)

    asset_type_obj: AssetType | None = None
    attribute_map: dict[str, str] = {}

    class Meta:
        model = Asset
        fields = ["site", "parent", "asset_type", "name", "tags"]
        help_texts = {"tags": "Comma-separated, e.g. critical,shed-first"}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._attribute_problems_reported = False
        self._type_switched = False
        asset_type = self.asset_type_obj
        if "site" in self.fields:
            self.fields["site"].required = False
            self.fields["site"].help_text = "Taken from the parent when left empty."
        self.fields["attributes_type"].initial = asset_type.pk if asset_type else ""
        if asset_type is None:
            return
        schema = asset_type.attribute_schema
        stored = self.instance.attributes if self.instance.pk and isinstance(self.instance.attributes, dict) else {}
        same_type = self.instance.pk and self.instance.asset_type_id == asset_type.pk
        for field_name, attribute in self.attribute_map.items():
            if same_type and attribute in stored:
                value = _display(stored[attribute])
                field = self.fields[field_name]
                self.initial[field_name] = str(value) if isinstance(field, forms.TypedChoiceField) else value
        if self.is_bound:
            shown_for = self.data.get(self.add_prefix("attributes_type"), "")
            if shown_for != str(asset_type.pk):
                # The fields on the page were those of another type (or none): show this
                # type's fields with their defaults and ask for another look before saving.
                self._type_switched = bool(self.attribute_map)
                data = self.data.copy()
                data[self.add_prefix("attributes_type")] = str(asset_type.pk)
                for field_name in self.attribute_map:
                    key = self.add_prefix(field_name)
                    if key not in data:
                        initial = self.fields[field_name].initial
                        if isinstance(self.fields[field_name], forms.BooleanField):
                            if initial:
                                data[key] = "on"
                        elif initial is not None:
                            data[key] = str(initial)
                self.data = data

    def clean(self):
        cleaned = super().clean()
        parent = cleaned.get("parent")
        if "site" in self.fields and not cleaned.get("site") and "site" not in self.errors:
            if parent is not None:
                cleaned["site"] = parent.site
            else:
                self.add_error("site", "Choose a site (or a parent, whose site is taken).")
        asset_type = self.asset_type_obj
        if asset_type is not None:
            site = cleaned.get("site") or (self.instance.site if self.instance.site_id else None)
            if site is not None and asset_type.organisation_id not in (None, site.organisation_id):
                self.add_error("asset_type", "This type belongs to another organisation than the site.")
            if self._type_switched:
                self.add_error(
                    "asset_type",
                    f"The attributes below are now those of a {asset_type}: check them and save again.",
                )
            self.instance.attributes = self._clean_attributes(asset_type)
        return cleaned

    def _clean_attributes(self, asset_type: AssetType) -> dict:
        schema = asset_type.attribute_schema
        properties = schema.get("properties") or {}
        attributes = {}
        if self.instance.pk and isinstance(self.instance.attributes, dict) and schema.get("additionalProperties") is not False:
            # Stored attributes the schema does not name, but allows, are kept as they are.
            attributes = {k: v for k, v in self.instance.attributes.items() if k not in properties}
        field_of = {}
        for field_name, attribute in self.attribute_map.items():
            field_of[attribute] = field_name
            if field_name in self.errors:
                self._attribute_problems_reported = True
                continue
            value = self.cleaned_data.get(field_name)
            if value is None or value == "":
                continue
            if isinstance(self.fields[field_name], forms.FloatField):
                value = _number(value)
            attributes[attribute] = value
        attributes = with_defaults(schema, attributes)
        for path, messages in attribute_errors(schema, attributes).items():
            field_name = field_of.get(path.split(".")[0]) if path else None
            if field_name:
                if field_name not in self.errors:
                    self.add_error(field_name, messages)
            else:
                self.add_error(None, [f"{path or 'attributes'}: {m}" for m in messages])
            self._attribute_problems_reported = True
        return attributes

    def _update_errors(self, errors):
        """Model errors to the fields operators see: a cycle is the parent's, attributes have theirs."""
        error_dict = errors.error_dict if hasattr(errors, "error_dict") else {NON_FIELD_ERRORS: errors.error_list}
        remapped: dict[str, list] = {}
        for field, messages in error_dict.items():
            if field == "attributes":
                if self._attribute_problems_reported:
                    continue  # already shown on each attribute's own field
                field = NON_FIELD_ERRORS
            elif field == NON_FIELD_ERRORS:
                cycle = [m for m in messages if TREE_CYCLE_MESSAGE in " ".join(m.messages)]
                if cycle and "parent" in self.fields:
                    remapped.setdefault("parent", []).append(
                        ValidationError("This would put the asset under itself or one of its own descendants.")
                    )
                    messages = [m for m in messages if m not in cycle]
            elif field not in self.fields:
                field = NON_FIELD_ERRORS
            if messages:
                remapped.setdefault(field, []).extend(messages)
        if remapped:
            super()._update_errors(ValidationError(remapped))


def asset_form_for_type(asset_type: AssetType | None, base=AssetForm) -> type[AssetForm]:
    """An AssetForm class with one declared field per attribute of `asset_type`."""
    attrs = {"asset_type_obj": asset_type, "attribute_map": {}}
    if asset_type is not None:
        for field_name, (attribute, field) in attribute_fields(asset_type.attribute_schema).items():
            attrs[field_name] = field
            attrs["attribute_map"][field_name] = attribute
    name = f"AssetForm_{asset_type.key}" if asset_type is not None else "AssetFormNoType"
    return type(name.replace("-", "_"), (base,), attrs)


# --- JSON edited as readable text --------------------------------------------------------------

class PrettyJSONField(forms.JSONField):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("widget", forms.Textarea(attrs={"rows": 18, "cols": 90, "style": "font-family: monospace"}))
        super().__init__(*args, **kwargs)

    def prepare_value(self, value):
        if isinstance(value, forms.fields.InvalidJSONInput):
            return value
        return json.dumps(value, ensure_ascii=False, indent=2, cls=self.encoder)


class AssetTypeForm(forms.ModelForm):
    attribute_schema = PrettyJSONField(
        help_text='JSON Schema of the attributes, "type": "object" with one property per attribute; '
        'a property may carry "unit", "default" and "description". Example: '
        '{"type": "object", "properties": {"rated_power_kw": {"type": "number", "minimum": 0, "unit": "kW"}}, '
        '"additionalProperties": false}',
    )

    class Meta:
        model = AssetType
        fields = ["key", "name", "organisation", "description", "can_be_root", "allowed_parents", "attribute_schema"]

    def clean(self):
        cleaned = super().clean()
        organisation = cleaned.get("organisation")
        for parent in cleaned.get("allowed_parents") or []:
            if parent.organisation_id not in (None, getattr(organisation, "pk", None)):
                self.add_error("allowed_parents", f"{parent} belongs to another organisation.")
        return cleaned


class DeviceModelForm(forms.ModelForm):
    parameter_map = PrettyJSONField(help_text="Where each value sits in a payload and its unit; see telemetry/decoders.py.")

    class Meta:
        model = DeviceModel
        fields = ["key", "name", "organisation", "manufacturer", "parameter_map"]


class DeviceForm(forms.ModelForm):
    class Meta:
        model = Device
        fields = ["identifier", "name", "site", "device_model", "tags"]

    def clean(self):
        cleaned = super().clean()
        site, device_model = cleaned.get("site"), cleaned.get("device_model")
        if site and device_model and device_model.organisation_id not in (None, site.organisation_id):
            self.add_error("device_model", "This device model belongs to another organisation than the site.")
        return cleaned


class ChannelForm(forms.ModelForm):
    class Meta:
        model = Channel
        fields = ["device", "key", "metric", "role", "asset", "name", "max_power_w", "max_gap_s"]

    def clean(self):
        cleaned = super().clean()
        asset = cleaned.get("asset")
        device = cleaned.get("device")
        if device is None:  # in the device's inline the device is the form's parent
            try:
                device = self.instance.device
            except Channel.device.RelatedObjectDoesNotExist:
                device = None
        if asset is not None and device is not None and device.site_id and asset.site_id != device.site_id:
            self.add_error("asset", "The asset is on another site than the device.")
        return cleaned


class MembershipForm(forms.ModelForm):
    class Meta:
        model = Membership
        fields = ["user", "organisation", "role"]

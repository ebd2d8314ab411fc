"""The standard asset types, and every existing asset given one.

The definitions are written out here, not imported, so this migration keeps
doing what it did when later code changes. Operators add types in the admin.
"""

from django.db import migrations


def power(description="Rated electrical power", default=None):
    spec = {"type": "number", "minimum": 0, "unit": "kW", "description": description}
    if default is not None:
        spec["default"] = default
    return spec


def schema(properties, required=()):
    return {"type": "object", "properties": properties, "required": list(required), "additionalProperties": False}


LOADS = ["hvac_unit", "lighting", "ev_charger", "pv_inverter", "battery", "generic_load"]
LOAD_PARENTS = ["circuit", "electrical_panel", "zone", "floor", "building", "site"]

# key: (name, can be root, allowed parent types, attribute schema)
STANDARD_TYPES = {
    "site": ("Site", True, [], schema({
        "grid_connection_kva": {"type": "number", "minimum": 0, "unit": "kVA", "description": "Contracted grid connection"},
        "address": {"type": "string", "maxLength": 300},
    })),
    "building": ("Building", False, ["site"], schema({
        "floor_area_m2": {"type": "number", "minimum": 0, "unit": "m²"},
        "year_built": {"type": "integer", "minimum": 1800, "maximum": 2100},
        "use": {"type": "string", "enum": ["office", "retail", "industrial", "warehouse", "education", "healthcare", "hotel", "residential", "mixed"]},
    })),
    "floor": ("Floor", False, ["building"], schema({
        "level": {"type": "integer", "minimum": -10, "maximum": 200, "description": "0 is the ground floor"},
        "area_m2": {"type": "number", "minimum": 0, "unit": "m²"},
    })),
    "zone": ("Zone", False, ["building", "floor"], schema({
        "area_m2": {"type": "number", "minimum": 0, "unit": "m²"},
        "occupancy": {"type": "string", "enum": ["office", "meeting", "circulation", "technical", "storage", "retail", "kitchen", "other"]},
    })),
    "electrical_panel": ("Electrical panel", False, ["site", "building", "floor", "zone", "electrical_panel"], schema({
        "voltage_v": {"type": "number", "enum": [120, 208, 230, 240, 400, 480, 690], "unit": "V", "default": 400},
        "phases": {"type": "integer", "enum": [1, 3], "default": 3},
        "rated_current_a": {"type": "number", "minimum": 0, "unit": "A"},
    })),
    "circuit": ("Circuit", False, ["electrical_panel"], schema({
        "breaker_a": {"type": "number", "minimum": 0, "unit": "A"},
        "phases": {"type": "integer", "enum": [1, 3], "default": 1},
    })),
    "meter": ("Meter", False, ["site", "building", "electrical_panel", "circuit"], schema({
        "serial_number": {"type": "string", "maxLength": 64},
        "ct_ratio": {"type": "number", "exclusiveMinimum": 0, "default": 1},
    })),
    "hvac_unit": ("HVAC unit", False, LOAD_PARENTS, schema({
        "rated_power_kw": power(),
        "cooling_capacity_kw": power("Cooling capacity"),
        "refrigerant": {"type": "string", "maxLength": 16},
        "controllable": {"type": "boolean", "default": False},
    })),
    "lighting": ("Lighting", False, LOAD_PARENTS, schema({
        "rated_power_kw": power(),
        "technology": {"type": "string", "enum": ["led", "fluorescent", "halogen", "hid", "other"]},
        "controllable": {"type": "boolean", "default": False},
    })),
    "ev_charger": ("EV charger", False, LOAD_PARENTS, schema({
        "max_power_kw": power("Maximum charging power"),
        "connectors": {"type": "integer", "minimum": 1, "maximum": 16, "default": 1},
        "controllable": {"type": "boolean", "default": True},
    })),
    "pv_inverter": ("PV inverter", False, LOAD_PARENTS, schema({
        "rated_power_kw": power("Rated AC power"),
        "peak_power_kwp": {"type": "number", "minimum": 0, "unit": "kWp"},
    })),
    "battery": ("Battery", False, LOAD_PARENTS, schema({
        "capacity_kwh": {"type": "number", "minimum": 0, "unit": "kWh"},
        "max_charge_kw": power("Maximum charging power"),
        "max_discharge_kw": power("Maximum discharging power"),
    })),
    "generic_load": ("Generic load", False, LOAD_PARENTS, schema({
        "rated_power_kw": power(),
        "controllable": {"type": "boolean", "default": False},
        "priority": {"type": "integer", "minimum": 1, "maximum": 10, "default": 5, "description": "1 is shed first"},
    })),
}

# What the first schema's free-text kinds become.
KIND_TO_TYPE = {"building": "building", "panel": "electrical_panel", "circuit": "circuit", "load": "generic_load",
                "hvac": "hvac_unit", "pv_inverter": "pv_inverter", "meter": "meter", "site": "site"}


def create_types(apps, schema_editor):
    AssetType = apps.get_model("assets", "AssetType")
    types = {}
    for key, (name, can_be_root, _, attribute_schema) in STANDARD_TYPES.items():
        types[key], _ = AssetType.objects.update_or_create(
            key=key, defaults={"name": name, "can_be_root": can_be_root, "attribute_schema": attribute_schema}
        )
    for key, (_, _, parents, _) in STANDARD_TYPES.items():
        types[key].allowed_parents.set([types[parent] for parent in parents])

    # Existing trees: each site gets a root asset of type site, above its former roots.
    Asset = apps.get_model("assets", "Asset")
    Site = apps.get_model("assets", "Site")
    for asset in Asset.objects.all():
        asset.asset_type = types.get(KIND_TO_TYPE.get(asset.kind, "generic_load"), types["generic_load"])
        asset.save(update_fields=["asset_type"])
    for site in Site.objects.all():
        roots = Asset.objects.filter(site=site, parent=None).exclude(asset_type=types["site"])
        if roots.exists():
            site_root = Asset.objects.create(site=site, name=site.name, kind="site", asset_type=types["site"])
            roots.exclude(pk=site_root.pk).update(parent=site_root)


class Migration(migrations.Migration):
    dependencies = [("assets", "0002_asset_types_memberships_roles")]

    operations = [migrations.RunPython(create_types, migrations.RunPython.noop)]

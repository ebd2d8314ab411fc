"""Asset attributes checked against their type's JSON Schema (plain Python, no Django).

A schema is a JSON Schema object; each property may carry a `unit` (shown to
operators, ignored by validation) and a `default` (filled in when missing).
"""

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

EMPTY_SCHEMA = {"type": "object", "properties": {}, "additionalProperties": False}


class AttributeSchemaError(ValueError):
    """The schema itself is not a valid JSON Schema for attributes."""


def check_schema(schema: dict) -> None:
    if not isinstance(schema, dict) or schema.get("type") != "object":
        raise AttributeSchemaError('An attribute schema must be a JSON Schema with "type": "object".')
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        where = "/".join(str(part) for part in exc.absolute_path) or "(root)"
        raise AttributeSchemaError(f"Invalid JSON Schema at {where}: {exc.message}") from exc
    if _has_reference(schema):
        # A reference could point anywhere (or nowhere) and fail only when an asset is checked.
        raise AttributeSchemaError("References ($ref, $dynamicRef) are not supported in attribute schemas: write the rule out.")


def _has_reference(node) -> bool:
    if isinstance(node, dict):
        return any(key in ("$ref", "$dynamicRef") or _has_reference(value) for key, value in node.items())
    if isinstance(node, list):
        return any(_has_reference(item) for item in node)
    return False


def with_defaults(schema: dict, attributes: dict) -> dict:
    """The attributes with each missing top-level property set to its schema default."""
    if not isinstance(attributes, dict):
        return attributes
    filled = dict(attributes)
    for name, spec in schema.get("properties", {}).items():
        if name not in filled and isinstance(spec, dict) and "default" in spec:
            filled[name] = spec["default"]
    return filled


def attribute_errors(schema: dict, attributes) -> dict[str, list[str]]:
    """Every problem of `attributes`, keyed by the attribute's path ("" for the object itself)."""
    errors: dict[str, list[str]] = {}
    for error in sorted(Draft202012Validator(schema).iter_errors(attributes), key=lambda e: list(e.absolute_path)):
        path = ".".join(str(part) for part in error.absolute_path)
        if error.validator == "required":
            # Point at the missing attribute itself, not at the object that lacks it.
            missing = error.message.split("'")[1] if "'" in error.message else ""
            path = ".".join(p for p in (path, missing) if p)
            message = "This attribute is required."
        elif error.validator == "additionalProperties":
            message = error.message.replace("Additional properties are not allowed", "Unknown attribute")
        else:
            message = error.message
        errors.setdefault(path, []).append(message)
    return errors

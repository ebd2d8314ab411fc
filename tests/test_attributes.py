"""Asset attribute schemas and values (plain, no database)."""

import pytest

from assets.attributes import AttributeSchemaError, attribute_errors, check_schema, with_defaults

SCHEMA = {
    "type": "object",
    "properties": {
        "rated_power_kw": {"type": "number", "minimum": 0, "unit": "kW"},
        "phases": {"type": "integer", "enum": [1, 3], "default": 3},
    },
    "required": ["rated_power_kw"],
    "additionalProperties": False,
}


def test_errors_are_keyed_by_the_attribute_path():
    errors = attribute_errors(SCHEMA, {"rated_power_kw": -5, "phases": 2, "colour": "red"})
    assert errors["rated_power_kw"] == ["-5 is less than the minimum of 0"]
    assert "phases" in errors
    assert any("Unknown attribute" in message for message in errors[""])


def test_a_missing_required_attribute_is_reported_on_that_attribute():
    assert attribute_errors(SCHEMA, {}) == {"rated_power_kw": ["This attribute is required."]}


def test_defaults_fill_only_what_is_missing():
    assert with_defaults(SCHEMA, {"rated_power_kw": 2}) == {"rated_power_kw": 2, "phases": 3}
    assert with_defaults(SCHEMA, {"rated_power_kw": 2, "phases": 1})["phases"] == 1


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "array"},
        {"type": "object", "properties": {"x": {"type": "nope"}}},
        {"type": "object", "properties": {"x": {"$ref": "#/nowhere"}}},
    ],
    ids=["not-an-object", "invalid-json-schema", "unresolvable-reference"],
)
def test_an_unusable_schema_is_refused_when_the_type_is_saved(schema):
    with pytest.raises(AttributeSchemaError):
        check_schema(schema)

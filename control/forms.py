"""The admin's parameter change form: one parameter, its value typed as text or JSON."""

import json

from django import forms

from .definitions import ParameterDefinition

TRUE_WORDS = {"true", "1", "on", "yes"}
FALSE_WORDS = {"false", "0", "off", "no"}


def value_from_text(definition: ParameterDefinition, text: str):
    """What the operator typed, as the definition's type; text that does not convert stays text,
    so the definition's check refuses it with the parameter's own rule."""
    text = text.strip()
    if definition.type == "boolean":
        word = text.lower()
        return True if word in TRUE_WORDS else False if word in FALSE_WORDS else text
    try:
        value = json.loads(text)
    except ValueError:
        return text
    if definition.type == "string" and not isinstance(value, str):
        return text  # 42 typed for a text parameter means the text "42"
    return value


def describe(definition: ParameterDefinition) -> str:
    """The rule in a few words: "integer, s, 1 to 3600, default 60"."""
    parts = [definition.type]
    if definition.unit:
        parts.append(definition.unit)
    if definition.choices:
        parts.append("one of " + ", ".join(json.dumps(choice) for choice in definition.choices))
    if definition.minimum is not None or definition.maximum is not None:
        low = "" if definition.minimum is None else f"{definition.minimum:g}"
        high = "" if definition.maximum is None else f"{definition.maximum:g}"
        parts.append(f"{low or '…'} to {high or '…'}")
    if definition.default is not None:
        parts.append(f"default {json.dumps(definition.default)}")
    if definition.reboot:
        parts.append("the device restarts")
    if not definition.writable:
        parts.append("read-only")
    return ", ".join(parts)


class ParameterChangeForm(forms.Form):
    key = forms.ChoiceField(label="parameter")
    value = forms.CharField(
        max_length=1000, strip=False,
        help_text="Typed as the parameter's type: 200, 2.5, true/false, text (or any JSON value).",
    )

    def __init__(self, definitions: dict[str, ParameterDefinition], *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.definitions = definitions
        self.fields["key"].choices = [(key, f"{key} ({describe(d)})") for key, d in sorted(definitions.items())]

    def values(self) -> dict:
        key = self.cleaned_data["key"]
        return {key: value_from_text(self.definitions[key], self.cleaned_data["value"])}

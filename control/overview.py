"""One device's parameters as an operator looks at them: every parameter its model defines or it has
a row for, with the definition, the desired and reported values and the state. The device page of
the admin and GET /api/devices/{id}/parameters/ both show this."""

from dataclasses import dataclass

from assets.models import Device

from .definitions import Configuration, DefinitionError, ParameterDefinition, configuration_of
from .models import DeviceConfiguration, DeviceParameter


@dataclass(frozen=True)
class ParameterView:
    key: str
    definition: ParameterDefinition | None  # None: the model no longer defines it
    row: DeviceParameter | None  # None: never set nor reported

    @property
    def drifted(self) -> bool:
        return self.row is not None and self.row.state == DeviceParameter.State.DRIFTED


@dataclass(frozen=True)
class DeviceOverview:
    protocol: str | None
    versions: DeviceConfiguration | None  # the change set numbering and the version last reported
    parameters: list[ParameterView]


def model_configuration(device_model) -> Configuration | None:
    """The model's configuration section; None for a model without one (or with one saved before the rules were checked)."""
    try:
        return configuration_of(device_model.parameter_map)
    except DefinitionError:
        return None


def device_overview(device: Device) -> DeviceOverview:
    configuration = model_configuration(device.device_model)
    definitions = configuration.parameters if configuration else {}
    rows = {row.key: row for row in DeviceParameter.objects.filter(device=device).select_related("change_set")}
    return DeviceOverview(
        protocol=configuration.protocol if configuration else None,
        versions=DeviceConfiguration.objects.filter(device=device).first(),
        parameters=[ParameterView(key, definitions.get(key), rows.get(key)) for key in sorted(set(definitions) | set(rows))],
    )

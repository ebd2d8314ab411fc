"""Parameter definitions: the `configuration` section of a device model's parameter map, and the
check of a value against its definition. Plain Python: no Django, no I/O.

The format is documented in docs/device-parameters.md. Every refusal names the parameter and the
rule it breaks, because it is shown as it is to the operator who typed the value.
"""

import math
from dataclasses import dataclass, field, replace

PROTOCOLS = ("iotwatt", "tasmota", "shelly_rpc")
TYPES = ("integer", "number", "boolean", "string")
_PARAMETER_KEYS = {"type", "unit", "minimum", "maximum", "choices", "default", "writable", "reboot", "description", "command", "rpc"}
_RPC_KEYS = {"method", "params", "config_key"}
MAX_STRING_LENGTH = 1000


class DefinitionError(ValueError):
    """The configuration section itself is wrong."""


class ValueRefused(ValueError):
    """A value breaks its parameter's rule; the message names both."""


@dataclass(frozen=True)
class RpcTarget:
    method: str
    params: dict
    config_key: tuple[str, ...]  # dotted path inside the method's "config"


@dataclass(frozen=True)
class ParameterDefinition:
    key: str
    type: str
    unit: str = ""
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple = ()
    default: object = None
    writable: bool = True
    reboot: bool = False
    description: str = ""
    command: str = ""  # tasmota
    rpc: RpcTarget | None = None  # shelly_rpc

    def check(self, value):
        """The value as the device gets it (2.0 for an integer becomes 2), or ValueRefused."""
        if not self.writable:
            raise ValueRefused(f"{self.key} is read-only: the device reports it, it cannot be set")
        value = self._typed(value)
        if self.choices and not any(values_equal(value, choice) for choice in self.choices):
            raise ValueRefused(f"{self.key}: {value!r} is not one of {', '.join(repr(c) for c in self.choices)}")
        if self.minimum is not None and value < self.minimum:
            raise ValueRefused(f"{self.key}: {value!r} is below the minimum {_number(self.minimum)}{self._unit()}")
        if self.maximum is not None and value > self.maximum:
            raise ValueRefused(f"{self.key}: {value!r} is above the maximum {_number(self.maximum)}{self._unit()}")
        return value

    def _typed(self, value):
        if self.type == "boolean":
            if isinstance(value, bool):
                return value
            raise ValueRefused(f"{self.key}: {value!r} is not true or false")
        if self.type == "string":
            if not isinstance(value, str):
                raise ValueRefused(f"{self.key}: {value!r} is not text")
            if len(value) > MAX_STRING_LENGTH or "\x00" in value:
                raise ValueRefused(f"{self.key}: text longer than {MAX_STRING_LENGTH} characters or with a NUL character")
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueRefused(f"{self.key}: {value!r} is not a {'whole number' if self.type == 'integer' else 'number'}")
        if self.type == "integer":
            if value != int(value):
                raise ValueRefused(f"{self.key}: {value!r} is not a whole number")
            return int(value)
        return float(value) if isinstance(value, float) else value

    def _unit(self) -> str:
        return f" {self.unit}" if self.unit else ""


@dataclass(frozen=True)
class Configuration:
    protocol: str
    parameters: dict[str, ParameterDefinition] = field(default_factory=dict)

    def check(self, values: dict) -> tuple[dict, dict[str, str]]:
        """(accepted values, {key: why refused}) for a change of several parameters."""
        accepted, refused = {}, {}
        for key, value in values.items():
            definition = self.parameters.get(key)
            if definition is None:
                refused[key] = f"{key} is not a parameter of this device model"
                continue
            try:
                accepted[key] = definition.check(value)
            except ValueRefused as exc:
                refused[key] = str(exc)
        return accepted, refused


def values_equal(a, b) -> bool:
    """Equal as a device means it: 200 and 200.0 are the same value, true and 1 are not."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return float(a) == float(b)
    return a == b


def configuration_of(parameter_map) -> Configuration | None:
    """The device model's configuration section, checked; None when its devices take no configuration."""
    if not isinstance(parameter_map, dict) or "configuration" not in parameter_map:
        return None
    return parse_configuration(parameter_map["configuration"])


def parse_configuration(raw) -> Configuration:
    if not isinstance(raw, dict):
        raise DefinitionError('"configuration" must be an object like {"protocol": "iotwatt", "parameters": {...}}.')
    unknown = set(raw) - {"protocol", "parameters"}
    if unknown:
        raise DefinitionError(f'"configuration" has unknown keys: {", ".join(sorted(unknown))}.')
    protocol = raw.get("protocol")
    if protocol not in PROTOCOLS:
        raise DefinitionError(f'"configuration.protocol" must be one of {", ".join(PROTOCOLS)}, not {protocol!r}.')
    parameters = raw.get("parameters", {})
    if not isinstance(parameters, dict):
        raise DefinitionError('"configuration.parameters" must be an object of parameter definitions by key.')
    return Configuration(protocol, {key: _definition(key, entry, protocol) for key, entry in parameters.items()})


def _definition(key: str, entry, protocol: str) -> ParameterDefinition:
    where = f'"configuration.parameters.{key}"'
    if not key or len(key) > 100 or not key.replace("_", "").replace(".", "").replace("-", "").isalnum():
        raise DefinitionError(f"{where}: a key is 1-100 letters, digits, _ . or -.")
    if not isinstance(entry, dict):
        raise DefinitionError(f'{where} must be an object like {{"type": "integer", "minimum": 1}}.')
    unknown = set(entry) - _PARAMETER_KEYS
    if unknown:
        raise DefinitionError(f"{where} has unknown keys: {', '.join(sorted(unknown))}.")
    kind = entry.get("type")
    if kind not in TYPES:
        raise DefinitionError(f"{where}.type must be one of {', '.join(TYPES)}, not {kind!r}.")
    for flag in ("writable", "reboot"):
        if flag in entry and not isinstance(entry[flag], bool):
            raise DefinitionError(f"{where}.{flag} must be true or false.")
    for text in ("unit", "description", "command"):
        if text in entry and not isinstance(entry[text], str):
            raise DefinitionError(f"{where}.{text} must be text.")
    bounds = {}
    for bound in ("minimum", "maximum"):
        value = entry.get(bound)
        if value is None:
            continue
        if kind not in ("integer", "number"):
            raise DefinitionError(f"{where}.{bound} applies to numbers only.")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise DefinitionError(f"{where}.{bound} must be a number.")
        bounds[bound] = value
    if "minimum" in bounds and "maximum" in bounds and bounds["minimum"] > bounds["maximum"]:
        raise DefinitionError(f"{where}: the minimum is above the maximum.")
    choices = entry.get("choices", [])
    if not isinstance(choices, list) or ("choices" in entry and not choices):
        raise DefinitionError(f"{where}.choices must be a list of the allowed values.")
    definition = ParameterDefinition(
        key=key, type=kind, unit=entry.get("unit", ""), minimum=bounds.get("minimum"), maximum=bounds.get("maximum"),
        writable=True, reboot=entry.get("reboot", False), description=entry.get("description", ""),
        command=entry.get("command", ""), rpc=_rpc(entry.get("rpc"), where) if "rpc" in entry else None,
    )
    for choice in choices:
        try:
            definition._typed(choice)
        except ValueRefused:
            raise DefinitionError(f"{where}.choices: {choice!r} is not of type {kind}.") from None
    definition = replace(definition, choices=tuple(choices))
    if "default" in entry:
        try:
            definition.check(entry["default"])
        except ValueRefused as exc:
            raise DefinitionError(f"{where}.default: {exc}.") from None
    definition = replace(definition, default=entry.get("default"), writable=entry.get("writable", True))
    if definition.writable and protocol == "tasmota" and not definition.command:
        raise DefinitionError(f'{where}: a Tasmota parameter names its command, e.g. "command": "TelePeriod".')
    if definition.writable and protocol == "shelly_rpc" and definition.rpc is None:
        raise DefinitionError(f'{where}: a Shelly parameter names its RPC, e.g. "rpc": {{"method": "Switch.SetConfig", "params": {{"id": 0}}, "config_key": "initial_state"}}.')
    if definition.command and (not definition.command.isalnum() or len(definition.command) > 64):
        raise DefinitionError(f"{where}.command must be a Tasmota command name (letters and digits).")
    return definition


def _rpc(raw, where: str) -> RpcTarget:
    if not isinstance(raw, dict) or set(raw) - _RPC_KEYS:
        raise DefinitionError(f'{where}.rpc must be an object with "method", "params" and "config_key".')
    method, params, config_key = raw.get("method"), raw.get("params", {}), raw.get("config_key")
    if not isinstance(method, str) or "." not in method:
        raise DefinitionError(f'{where}.rpc.method must be a Shelly method name like "Switch.SetConfig".')
    if not isinstance(params, dict) or "config" in params:
        raise DefinitionError(f'{where}.rpc.params must be an object of the fixed params (without "config").')
    if not isinstance(config_key, str) or not all(config_key.split(".")):
        raise DefinitionError(f'{where}.rpc.config_key must name the key in the method\'s config, dotted for nesting.')
    return RpcTarget(method, params, tuple(config_key.split(".")))


def _number(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)

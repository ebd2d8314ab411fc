"""The device side of the three configuration protocols of docs/device-parameters.md.

Each protocol says which topics a device subscribes to, what it publishes on connecting, how it
answers a message and what its telemetry looks like. Everything returns messages to publish
(Outgoing); fleet.py sends them, so these stay plain functions of a device and a message.
"""

import json
import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass

from . import telemetry
from .device import SimulatedDevice

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outgoing:
    topic: str
    payload: str
    qos: int = 0
    retain: bool = False
    # An answer to a message: held back by the device's answer_delay_s.
    answer: bool = False


def _json(data) -> str:
    return json.dumps(data, separators=(",", ":"))


def _parse_json(device: SimulatedDevice, payload: bytes):
    try:
        return json.loads(payload)
    except (UnicodeDecodeError, ValueError):
        device.counters.malformed += 1
        return None


class DeviceProtocol(ABC):
    # Topics with "{device}" for the device id.
    status_topic_template: str
    subscription_templates: tuple[str, ...]
    online: str
    offline: str
    telemetry_qos = 0

    def status_topic(self, device: SimulatedDevice) -> str:
        return self.status_topic_template.format(device=device.device_id)

    def subscriptions(self, device: SimulatedDevice) -> list[str]:
        return [template.format(device=device.device_id) for template in self.subscription_templates]

    def status(self, device: SimulatedDevice, online: bool) -> Outgoing:
        return Outgoing(self.status_topic(device), self.online if online else self.offline, qos=1, retain=True)

    def on_connected(self, device: SimulatedDevice) -> list[Outgoing]:
        return [self.status(device, online=True)]

    def on_configuration_changed(self, device: SimulatedDevice) -> list[Outgoing]:
        """A change by other means than the protocol: nothing to say unless the protocol reports."""
        return []

    @abstractmethod
    def handle(self, device: SimulatedDevice, topic: str, payload: bytes) -> list[Outgoing]:
        """What the device publishes in answer to a message on one of its subscriptions."""

    @abstractmethod
    def telemetry(self, device: SimulatedDevice, sample: telemetry.Sample) -> Outgoing:
        """The device's telemetry message for one sample, in its own format."""

    def relay_changed(self, device: SimulatedDevice) -> list[Outgoing]:
        """A relay switched: the device sends a reading at once, as Tasmota and Shelly publish a change."""
        sample = device.take_sample()
        return [] if sample is None else [self.telemetry(device, sample)]


class NativeProtocol(DeviceProtocol):
    """`iotwatt`: versioned change sets on config/set, answers and reports on config/reported."""

    status_topic_template = "iotwatt/{device}/status"
    subscription_templates = ("iotwatt/{device}/config/set", "iotwatt/{device}/cmd")
    online, offline = "online", "offline"
    telemetry_qos = 1  # the native path is the lossless QoS 1 one (docs/device-parameters.md, telemetry/bridge.py)

    def _reported(self, device, message: dict, answer: bool) -> Outgoing:
        return Outgoing(f"iotwatt/{device.device_id}/config/reported", _json(message), qos=1, retain=True, answer=answer)

    def on_connected(self, device):
        return super().on_connected(device) + [self._reported(device, device.report(), answer=False)]

    def on_configuration_changed(self, device):
        return [self._reported(device, device.report(), answer=False)]

    def handle(self, device, topic, payload):
        if topic.endswith("/config/set"):
            return self._change_set(device, payload)
        if topic.endswith("/cmd"):
            return self._command(device, payload)
        return []

    def _change_set(self, device, payload):
        if device.silent:
            return []
        message = _parse_json(device, payload)
        version = message.get("version") if isinstance(message, dict) else None
        parameters = message.get("parameters", {}) if isinstance(message, dict) else None
        if isinstance(version, bool) or not isinstance(version, int) or not isinstance(parameters, dict):
            # Firmware has no one to tell that a message makes no sense: it drops it.
            if message is not None:
                device.counters.malformed += 1
            return []
        device.counters.config_answered += 1
        return [self._reported(device, device.apply_change_set(version, parameters), answer=True)]

    def _command(self, device, payload):
        if device.ignore_commands:
            return []
        message = _parse_json(device, payload)
        if not isinstance(message, dict):
            if message is not None:
                device.counters.malformed += 1
            return []
        state, reason = device.set_relay(str(message.get("relay")), str(message.get("state")))
        ack = {"id": message.get("id"), "status": "refused" if reason else "done"}
        if reason:
            ack["reason"] = reason
            device.counters.commands_refused += 1
        else:
            device.counters.commands_obeyed += 1
        ack["relays"] = dict(device.relays)
        out = [Outgoing(f"iotwatt/{device.device_id}/cmd/ack", _json(ack), qos=1, answer=True)]
        return out + ([] if reason else self.relay_changed(device))

    def telemetry(self, device, sample):
        return Outgoing(f"iotwatt/{device.device_id}/telemetry", _json(telemetry.native_message(sample)), qos=self.telemetry_qos)


# Tasmota takes these words for a relay (POWER ON, POWER 1, POWER TRUE...).
_TASMOTA_POWER_WORDS = {"on": "on", "1": "on", "true": "on", "off": "off", "0": "off", "false": "off", "toggle": "toggle", "2": "toggle"}
_TASMOTA_BOOLEAN_WORDS = {"1": True, "on": True, "true": True, "0": False, "off": False, "false": False}


class TasmotaProtocol(DeviceProtocol):
    """`tasmota`: one command per topic, answers on stat/<id>/RESULT; values kept in limits, never refused."""

    status_topic_template = "tele/{device}/LWT"
    subscription_templates = ("cmnd/{device}/+",)
    online, offline = "Online", "Offline"

    def _result(self, device, body: dict) -> Outgoing:
        return Outgoing(f"stat/{device.device_id}/RESULT", _json(body), answer=True)

    def handle(self, device, topic, payload):
        command = topic.rsplit("/", 1)[-1]
        text = payload.decode("utf-8", "replace").strip()
        if command.upper().startswith("POWER") and (command[5:] == "" or command[5:].isdigit()):
            return self._power(device, command[5:], text)
        if device.silent:
            return []
        name = next((name for name in device.rules if name.lower() == command.lower()), None)
        if name is None:
            return [self._result(device, {"Command": "Unknown"})]
        device.counters.config_answered += 1
        if text:
            value = self._parsed(device.rules[name].spec["type"], text)
            if value is None:
                return [self._result(device, {"Command": "Error"})]
            device.parameters[name] = device.rules[name].kept_in_limits(value, device.parameters.get(name))
        current = device.parameters.get(name)
        shown = ("ON" if current else "OFF") if isinstance(current, bool) else current
        return [self._result(device, {name: shown})]

    @staticmethod
    def _parsed(kind: str, text: str):
        try:
            if kind == "integer":
                return int(float(text)) if float(text).is_integer() else None
            if kind == "number":
                return float(text)
        except ValueError:
            return None
        if kind == "boolean":
            return _TASMOTA_BOOLEAN_WORDS.get(text.lower())
        return text

    def _power(self, device, index_text: str, text: str):
        if device.ignore_commands:
            return []
        relays = list(device.relays)
        index = int(index_text or 1)
        if not 1 <= index <= len(relays):
            return [self._result(device, {"Command": "Unknown"})]
        relay = relays[index - 1]
        # A single-relay device answers POWER whichever way it was asked.
        key = "POWER" if len(relays) == 1 else f"POWER{index}"
        changed = False
        if text:
            state = _TASMOTA_POWER_WORDS.get(text.lower())
            if state is None:
                device.counters.commands_refused += 1
                return [self._result(device, {"Command": "Error"})]
            before = device.relays[relay]
            device.set_relay(relay, state)
            changed = device.relays[relay] != before
            device.counters.commands_obeyed += 1
        shown = device.relays[relay].upper()
        out = [self._result(device, {key: shown}), Outgoing(f"stat/{device.device_id}/{key}", shown, answer=True)]
        return out + (self.relay_changed(device) if changed else [])

    def telemetry(self, device, sample):
        channel = next(iter(sample.power_w))
        return Outgoing(f"tele/{device.device_id}/SENSOR", _json(telemetry.tasmota_sensor_message(sample, channel)))


# Shelly's error codes: the argument is wrong; an id that does not exist; no such method.
SHELLY_INVALID_ARGUMENT = -103
SHELLY_NOT_FOUND = -105
SHELLY_NO_HANDLER = 404


def _flattened(config: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update(_flattened(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


class ShellyRpcError(Exception):
    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code


class ShellyRpcProtocol(DeviceProtocol):
    """`shelly_rpc`: JSON-RPC requests on <id>/rpc, answered on <src>/rpc with the request's id."""

    status_topic_template = "{device}/online"
    subscription_templates = ("{device}/rpc",)
    online, offline = "true", "false"

    def handle(self, device, topic, payload):
        request = _parse_json(device, payload)
        if not isinstance(request, dict) or not isinstance(request.get("src"), str) or not isinstance(request.get("method"), str):
            if request is not None:
                device.counters.malformed += 1
            return []
        method, params = request["method"], request.get("params") or {}
        is_config = method.endswith(".SetConfig") or method.endswith(".GetConfig")
        if (device.silent and is_config) or (device.ignore_commands and not is_config):
            return []
        response = {"id": request.get("id"), "src": device.device_id, "dst": request["src"]}
        extra = []
        try:
            if method == "Switch.Set":
                response["result"], extra = self._switch_set(device, params)
            elif method == "Shelly.GetConfig":
                response["result"] = self._configuration(device)
            elif method.endswith(".SetConfig"):
                response["result"] = self._set_config(device, method, params)
            else:
                raise ShellyRpcError(SHELLY_NO_HANDLER, f"No handler for {method}")
        except ShellyRpcError as error:
            response["error"] = {"code": error.code, "message": str(error)}
        if is_config:
            device.counters.config_answered += 1
        return [Outgoing(f"{request['src']}/rpc", _json(response), qos=1, answer=True)] + extra

    def _switch_set(self, device, params):
        relays = list(device.relays)
        switch_id, on = params.get("id"), params.get("on")
        if not isinstance(switch_id, int) or not 0 <= switch_id < len(relays):
            device.counters.commands_refused += 1
            raise ShellyRpcError(SHELLY_NOT_FOUND, f"Argument 'id', value {switch_id} not found!")
        if not isinstance(on, bool):
            device.counters.commands_refused += 1
            raise ShellyRpcError(SHELLY_INVALID_ARGUMENT, "Argument 'on', must be a boolean!")
        relay = relays[switch_id]
        was_on = device.relays[relay] == "on"
        device.set_relay(relay, "on" if on else "off")
        device.counters.commands_obeyed += 1
        return {"was_on": was_on}, (self.relay_changed(device) if was_on != on else [])

    @staticmethod
    def _rule_for(device, method: str, params: dict, key: str):
        for name, rule in device.rules.items():
            rpc = rule.spec.get("rpc", {})
            if rpc.get("method") == method and rpc.get("config_key") == key and all(
                params.get(field) == value for field, value in rpc.get("params", {}).items()
            ):
                return rule
        return None

    def _set_config(self, device, method, params):
        config = params.get("config")
        if not isinstance(config, dict) or not config:
            raise ShellyRpcError(SHELLY_INVALID_ARGUMENT, "Missing argument 'config'!")
        accepted = {}
        # All or nothing, as Shelly firmware validates the whole config before saving any of it.
        for key, value in _flattened(config).items():
            rule = self._rule_for(device, method, params, key)
            if rule is None:
                raise ShellyRpcError(SHELLY_INVALID_ARGUMENT, f"Invalid argument 'config.{key}': unknown key")
            value, reason = rule.check(value)
            if reason:
                raise ShellyRpcError(SHELLY_INVALID_ARGUMENT, f"Invalid argument 'config.{key}': {reason}")
            accepted[rule.name] = value
        device.parameters.update(accepted)
        return {"restart_required": any(device.rules[name].spec.get("reboot", False) for name in accepted)}

    @staticmethod
    def _configuration(device) -> dict:
        """Shelly.GetConfig: each parameter under its component (switch:0, sys...) and dotted key."""
        result = {}
        for name, rule in device.rules.items():
            rpc = rule.spec.get("rpc")
            if not rpc or name not in device.parameters:
                continue
            component = rpc["method"].split(".")[0].lower()
            if "id" in rpc.get("params", {}):
                component = f"{component}:{rpc['params']['id']}"
            node = result.setdefault(component, {})
            *path, leaf = rpc["config_key"].split(".")
            for part in path:
                node = node.setdefault(part, {})
            node[leaf] = device.parameters[name]
        return result

    def telemetry(self, device, sample):
        channel = next(iter(sample.power_w))
        relays = list(device.relays)
        relay = device.meter.relay_of.get(channel) or (relays[0] if relays else None)
        switch_id = relays.index(relay) if relay in relays else 0
        status = telemetry.shelly_switch_status(sample, channel, switch_id, device.relays.get(relay) == "on")
        return Outgoing(f"{device.device_id}/status/switch:{switch_id}", _json(status))


PROTOCOLS = {"iotwatt": NativeProtocol(), "tasmota": TasmotaProtocol(), "shelly_rpc": ShellyRpcProtocol()}


def protocol_for(device: SimulatedDevice) -> DeviceProtocol:
    return PROTOCOLS[device.profile.protocol]

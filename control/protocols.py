"""The server side of the configuration protocols (docs/device-parameters.md): the MQTT messages
that carry a change set to a device, and what a device's answer says. Plain Python: no Django, no I/O.

Every answer is read into the same `DeviceAnswer`, so the rules of control/answers.py do not
depend on the protocol.
"""

import json
import re
from dataclasses import dataclass, field

from .definitions import Configuration, ParameterDefinition

# Topic filters the configuration agent subscribes to: one per protocol's answers.
ANSWER_TOPICS = {
    "iotwatt": "iotwatt/+/config/reported",
    "tasmota": "stat/+/RESULT",
    "shelly_rpc": "iotwatt-config/+/rpc",
}
_ANSWER_PATTERNS = {
    "iotwatt": re.compile(r"^iotwatt/(?P<device>[^/+#]+)/config/reported$"),
    "tasmota": re.compile(r"^stat/(?P<device>[^/+#]+)/RESULT$"),
    "shelly_rpc": re.compile(r"^iotwatt-config/(?P<device>[^/+#]+)/rpc$"),
}
SHELLY_REQUEST_PREFIX = "iotwatt"
# Versions a device may name: far below what the database's columns hold (2,147,483,647), so that numbering
# after the highest a device says it has always leaves room.
MAX_VERSION = 1_000_000_000


class AnswerError(ValueError):
    """A message on an answer topic that says nothing we can use; the text says why."""


@dataclass(frozen=True)
class OutgoingMessage:
    topic: str
    payload: str
    keys: tuple[str, ...]  # the parameters it carries


@dataclass
class DeviceAnswer:
    """What one message from a device says about its configuration.

    `version`: the change set it answers (None: the protocol does not say, or a report).
    `is_report`: the device tells its configuration unasked (no change set answered).
    `applied` / `rejected`: keys of the answered change set taken, and refused with the device's reason.
    `values`: parameter values the device says it now has.
    `stale_at`: the device already has this newer version.
    `unmatched_refusal`: a refusal that does not name its parameter (Tasmota's {"Command":"Unknown"}).
    `applies_all`: "applied" without the list of keys: every key of the change set.
    """

    version: int | None = None
    is_report: bool = False
    applied: list[str] = field(default_factory=list)
    rejected: dict[str, str] = field(default_factory=dict)
    values: dict = field(default_factory=dict)
    stale_at: int | None = None
    unmatched_refusal: str | None = None
    applies_all: bool = False


def answer_device(topic: str) -> tuple[str, str] | None:
    """(protocol, device identifier) of an answer topic; None for any other topic."""
    for protocol, pattern in _ANSWER_PATTERNS.items():
        match = pattern.match(topic)
        if match:
            return protocol, match.group("device")
    return None


def change_set_messages(configuration: Configuration, identifier: str, version: int, values: dict) -> list[OutgoingMessage]:
    """The messages that carry `values` (already checked) to the device, in the order to publish them."""
    if configuration.protocol == "iotwatt":
        payload = json.dumps({"version": version, "parameters": values}, separators=(",", ":"))
        return [OutgoingMessage(f"iotwatt/{identifier}/config/set", payload, tuple(values))]
    messages = []
    # In key order: the order of a change set's values is not kept in the database, and a refusal that
    # does not name its command is matched by this order (control/answers.py).
    for key, value in sorted(values.items()):
        definition = configuration.parameters[key]
        if configuration.protocol == "tasmota":
            messages.append(OutgoingMessage(f"cmnd/{identifier}/{definition.command}", _tasmota_text(value), (key,)))
        else:
            messages.append(OutgoingMessage(f"{identifier}/rpc", _shelly_request(definition, identifier, version, value), (key,)))
    return messages


def _tasmota_text(value) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def _shelly_request(definition: ParameterDefinition, identifier: str, version: int, value) -> str:
    config: dict = {}
    node = config
    *parents, last = definition.rpc.config_key
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value
    return json.dumps({
        "id": f"{SHELLY_REQUEST_PREFIX}:{version}:{definition.key}",
        "src": f"iotwatt-config/{identifier}",
        "method": definition.rpc.method,
        "params": {**definition.rpc.params, "config": config},
    }, separators=(",", ":"))


def read_answer(protocol: str, payload: str | bytes, configuration: Configuration) -> DeviceAnswer:
    try:
        text = payload.decode("utf-8") if isinstance(payload, bytes) else payload
        document = json.loads(text)
    except (UnicodeDecodeError, ValueError):
        raise AnswerError("the answer is not JSON text") from None
    except RecursionError:
        raise AnswerError("the answer is JSON nested too deep") from None
    if not isinstance(document, dict):
        raise AnswerError("the answer is not a JSON object")
    reader = {"iotwatt": _native_answer, "tasmota": _tasmota_answer, "shelly_rpc": _shelly_answer}[protocol]
    return reader(document, configuration)


def _native_answer(document: dict, configuration: Configuration) -> DeviceAnswer:
    version = _version(document.get("version"), "version")
    values = document.get("parameters", {})
    if not isinstance(values, dict):
        raise AnswerError('"parameters" is not an object of values')
    status = document.get("status")
    if status is None:
        return DeviceAnswer(version=version, is_report=True, values=values)
    if status == "stale":
        # "version" is the device's own (docs/device-parameters.md); "current_version", if given, says it too.
        current = _version(document.get("current_version", version), "current_version")
        return DeviceAnswer(version=current, values=values, stale_at=current)
    if status not in ("applied", "rejected", "partial"):
        raise AnswerError(f"status {status!r} is not applied, rejected, partial or stale")
    applied = document.get("applied", [])
    rejected = document.get("rejected", {})
    if not isinstance(applied, list) or not all(isinstance(key, str) for key in applied):
        raise AnswerError('"applied" is not a list of parameter keys')
    if not isinstance(rejected, dict):
        raise AnswerError('"rejected" is not an object of reasons by parameter key')
    return DeviceAnswer(
        version=version, applied=applied, values=values, applies_all=status == "applied" and "applied" not in document,
        rejected={str(key): str(reason)[:1000] for key, reason in rejected.items()},
    )


def _version(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_VERSION:
        raise AnswerError(f"{name} {value!r} is not a whole number from 0 to {MAX_VERSION}")
    return value


def _tasmota_answer(document: dict, configuration: Configuration) -> DeviceAnswer:
    if set(document) == {"Command"}:
        return DeviceAnswer(unmatched_refusal=f"Tasmota answered Command: {document['Command']}")
    by_command = {definition.command.lower(): definition for definition in configuration.parameters.values() if definition.command}
    answer = DeviceAnswer()
    for name, value in document.items():
        definition = by_command.get(name.lower())
        if definition is not None:  # other results (POWER, ...) are not configuration
            answer.values[definition.key] = value
    return answer


def _shelly_answer(document: dict, configuration: Configuration) -> DeviceAnswer:
    request_id = document.get("id")
    parts = request_id.split(":", 2) if isinstance(request_id, str) else []
    if len(parts) != 3 or parts[0] != SHELLY_REQUEST_PREFIX or not re.fullmatch(r"[0-9]{1,10}", parts[1]):
        raise AnswerError(f"id {request_id!r} is not one of our requests")
    version, key = _version(int(parts[1]), "the id's version"), parts[2]
    if "error" in document:
        error = document["error"]
        message = error.get("message", error) if isinstance(error, dict) else error
        code = f" (code {error.get('code')})" if isinstance(error, dict) and "code" in error else ""
        return DeviceAnswer(version=version, rejected={key: f"{message}{code}"[:1000]})
    if "result" not in document:
        raise AnswerError("the answer has neither result nor error")
    return DeviceAnswer(version=version, applied=[key])

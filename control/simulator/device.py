"""One simulated device: its configuration, the rules its own firmware applies, its relays, its counters.

Nothing here speaks MQTT: protocols.py turns messages into calls on a device and its answers back
into messages, and fleet.py carries them over the device's connection (its `link`). The
configuration, the last applied version and the energy counters live as long as the object, as
they would in a device's flash memory: going offline and back changes none of them.
"""

import json
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from typing import Protocol

from .profiles import Profile
from .telemetry import CsvReplay, Meter, ProfileLoad, Sample, SimulatedClock

RELAY_STATES = ("on", "off")


def _shown(value) -> str:
    return json.dumps(value)


class ParameterRule:
    """One parameter as the device's firmware checks it (see profiles.py for the rule's fields)."""

    def __init__(self, name: str, spec: dict):
        self.name = name
        self.spec = spec
        refuse = spec.get("refuse", [])
        self.refusals = [refuse] if isinstance(refuse, dict) else list(refuse)

    @property
    def writable(self) -> bool:
        return self.spec.get("writable", True)

    def typed(self, value):
        """The value as this parameter's type, or None when it is not of that type (JSON gives 200.0 for 200 sometimes)."""
        kind = self.spec["type"]
        if kind == "boolean":
            return value if isinstance(value, bool) else None
        if kind == "string":
            return value if isinstance(value, str) else None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        if kind == "integer":
            return int(value) if float(value).is_integer() else None
        return value

    def check(self, value) -> tuple[object, str | None]:
        """(the value to store, None) when the device takes it, else (None, the device's reason)."""
        name = self.name
        if not self.writable:
            return None, f"{name}: read-only"
        typed = self.typed(value)
        if typed is None:
            return None, f"{name}: {_shown(value)} is not {'an' if self.spec['type'] == 'integer' else 'a'} {self.spec['type']}"
        choices = self.spec.get("choices")
        if choices is not None and typed not in choices:
            return None, f"{name}: {_shown(typed)} is not one of {', '.join(str(choice) for choice in choices)}"
        if "minimum" in self.spec and typed < self.spec["minimum"]:
            return None, f"{name}: {_shown(typed)} is below the minimum {self.spec['minimum']}"
        if "maximum" in self.spec and typed > self.spec["maximum"]:
            return None, f"{name}: {_shown(typed)} is above the maximum {self.spec['maximum']}"
        for refusal in self.refusals:
            if self._refused_by(refusal, typed):
                return None, f"{name}: {refusal.get('reason', 'refused by the device')}"
        return typed, None

    @staticmethod
    def _refused_by(refusal: dict, value) -> bool:
        if "values" in refusal and value in refusal["values"]:
            return True
        if "above" in refusal and value > refusal["above"]:
            return True
        return "below" in refusal and value < refusal["below"]

    def kept_in_limits(self, value, current):
        """What a Tasmota-like device keeps for `value`: a number beyond a limit moves to it (or, with
        "out_of_range": "keep", is ignored); any other value it would not take leaves `current`."""
        typed = self.typed(value)
        if typed is not None and self.spec["type"] in ("integer", "number"):
            low, high = self.spec.get("minimum"), self.spec.get("maximum")
            beyond = (low is not None and typed < low) or (high is not None and typed > high)
            if beyond and self.spec.get("out_of_range", "clamp") == "keep":
                return current
            if low is not None:
                typed = max(typed, low)
            if high is not None:
                typed = min(typed, high)
        accepted, reason = self.check(typed if typed is not None else value)
        return current if reason else accepted


@dataclass
class Counters:
    """What one device (or, summed, a fleet) did; each is touched by the network thread only."""

    published: int = 0
    received: int = 0
    telemetry_sent: int = 0
    config_answered: int = 0
    commands_obeyed: int = 0
    commands_refused: int = 0
    connects: int = 0
    malformed: int = 0

    def add(self, other: "Counters") -> None:
        for counter in fields(self):
            setattr(self, counter.name, getattr(self, counter.name) + getattr(other, counter.name))

    def as_dict(self) -> dict:
        return asdict(self)


class Link(Protocol):
    """The device's connection, as fleet.py provides it (every method may be called from any thread)."""

    def drop(self) -> None: ...
    def restore(self) -> None: ...
    def run(self, action): ...
    def configuration_changed(self) -> None: ...
    def relays_changed(self) -> None: ...
    @property
    def is_connected(self) -> bool: ...


class SimulatedDevice:
    """`interval_s`: seconds between telemetry messages; None follows the profile (its interval
    parameter when it names one, so a configuration change changes the pace, as on the device)."""

    def __init__(
        self,
        device_id: str,
        profile: Profile,
        source: CsvReplay | ProfileLoad | None = None,
        interval_s: float | None = None,
        speed: float = 1.0,
        silent: bool = False,
        answer_delay_s: float = 0.0,
    ):
        self.device_id = device_id
        self.profile = profile
        self.rules = {name: ParameterRule(name, spec) for name, spec in profile.parameters.items()}
        self.parameters = {name: spec["default"] for name, spec in profile.parameters.items() if "default" in spec}
        self.version = 0
        self._answer: dict | None = None  # the answer to `version`, sent again when that version comes again
        self.relays = dict(profile.relays)
        # Silent: online, but configuration messages go unanswered (the server's timeout and retries).
        self.silent = silent
        # Relay commands unanswered too, for the same on the command path.
        self.ignore_commands = False
        # Answers (to configuration and commands) leave this long after the message came: late answers.
        self.answer_delay_s = answer_delay_s
        self.interval_s = interval_s
        self.counters = Counters()
        self.source = source or ProfileLoad(profile.channels, seed=device_id)
        self.clock = SimulatedClock(self.source.start_time(), speed)
        channels = self.source.channels
        self.meter = Meter(channels, {key: profile.channels.get(key, {}).get("relay") for key in channels})
        self.link: Link | None = None

    def __repr__(self) -> str:
        return f"<SimulatedDevice {self.device_id} {self.profile.name}>"

    # Configuration

    def apply_change_set(self, version: int, parameters: dict) -> dict:
        """The answer to change set `version`: each parameter checked against the device's own rules."""
        if version == self.version and self._answer is not None:
            return json.loads(json.dumps(self._answer))
        if version <= self.version:
            return {"version": self.version, "status": "stale", "applied": [], "rejected": {}, "parameters": dict(self.parameters)}
        applied, rejected = [], {}
        for name, value in parameters.items():
            rule = self.rules.get(name)
            if rule is None:
                rejected[name] = f"{name}: unknown parameter"
                continue
            accepted, reason = rule.check(value)
            if reason:
                rejected[name] = reason
            else:
                self.parameters[name] = accepted
                applied.append(name)
        status = "applied" if not rejected else "rejected" if not applied else "partial"
        self.version = version
        self._answer = {"version": version, "status": status, "applied": applied, "rejected": rejected, "parameters": dict(self.parameters)}
        return json.loads(json.dumps(self._answer))

    def report(self) -> dict:
        """What the device says of its configuration unasked: an answer without status."""
        return {"version": self.version, "parameters": dict(self.parameters)}

    def change_locally(self, name: str, value) -> None:
        """A change on the device's own web page or buttons: taken by the same rules, then reported."""
        accepted, reason = self.rules[name].check(value) if name in self.rules else (None, f"{name}: unknown parameter")
        if reason:
            raise ValueError(reason)

        def change():
            self.parameters[name] = accepted
            if self.link:
                self.link.configuration_changed()

        self._on_device(change)

    # Relays

    def set_relay(self, relay: str, state: str) -> tuple[str | None, str | None]:
        """(the relay's new state, None), or (None, why not). `state`: on, off or toggle."""
        if relay not in self.relays:
            return None, f"no relay {relay!r} (relays: {', '.join(self.relays) or 'none'})"
        state = str(state).lower()
        if state == "toggle":
            state = "off" if self.relays[relay] == "on" else "on"
        if state not in RELAY_STATES:
            return None, f"state must be on, off or toggle, not {state!r}"
        self.relays[relay] = state
        return state, None

    def switch_locally(self, relay: str, state: str) -> None:
        """Someone presses the device's button: the relay changes and the telemetry shows it."""

        def press():
            _, reason = self.set_relay(relay, state)
            if reason:
                raise ValueError(reason)
            if self.link:
                self.link.relays_changed()

        self._on_device(press)

    # Telemetry

    def telemetry_interval_s(self) -> float:
        if self.interval_s is not None:
            return self.interval_s
        name = self.profile.telemetry_interval_parameter
        if name and isinstance(self.parameters.get(name), (int, float)) and self.parameters[name] > 0:
            return float(self.parameters[name])
        return self.profile.telemetry_interval_s

    def take_sample(self, when: datetime | None = None) -> Sample | None:
        """A reading now (None once a replayed file is over)."""
        when = when or self.clock.now()
        powers = self.source.powers(when)
        return None if powers is None else self.meter.read(when, powers, self.relays)

    # Connection

    @property
    def is_online(self) -> bool:
        return bool(self.link and self.link.is_connected)

    def go_offline(self) -> None:
        """The connection dies without a goodbye (power cut, Wi-Fi lost): the broker sends the last will."""
        self._require_link().drop()

    def go_online(self) -> None:
        """Connect again: online status, subscriptions, and (native) a report of the configuration."""
        self._require_link().restore()

    def _require_link(self) -> Link:
        if self.link is None:
            raise RuntimeError(f"{self.device_id} has no connection: run it in a Fleet")
        return self.link

    def _on_device(self, action) -> None:
        """State changes from outside run where the device's messages are handled, never beside them."""
        if self.link:
            self.link.run(action)
        else:
            action()

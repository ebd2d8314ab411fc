"""Bridge settings from the environment: refused at start when wrong; what the bridge subscribes to."""

import os
import subprocess
import sys

import pytest

from telemetry.bridge import MqttBridge

from .pipeline import ROOT


def settings_error(**env) -> str:
    """What loading the settings with these variables prints on failure ("" if they load)."""
    result = subprocess.run(
        [sys.executable, "-c", "import iotwatt.settings"], cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True
    )
    return "" if result.returncode == 0 else result.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize(
    "env, problem",
    [
        ({"MQTT_SHARED_GROUP": "a/b"}, "MQTT_SHARED_GROUP must be a plain name"),
        ({"MQTT_SHARED_GROUP": "all+"}, "MQTT_SHARED_GROUP must be a plain name"),
        ({"MQTT_CLIENT_ID": "  "}, "MQTT_CLIENT_ID must name this bridge"),
        ({"MQTT_TOPICS": "$share/g/iotwatt/+/telemetry"}, "MQTT_SHARED_GROUP adds it"),
        ({"MQTT_STATUS_TOPICS": "iotwatt/+/status,$share/g/tele/+/LWT"}, "MQTT_SHARED_GROUP adds it"),
    ],
)
def test_wrong_bridge_settings_are_refused_at_start(env, problem):
    assert problem in settings_error(**env)


def test_an_empty_group_is_allowed():
    assert settings_error(MQTT_SHARED_GROUP="") == ""


def bridge(**kwargs) -> MqttBridge:
    return MqttBridge("mqtt://127.0.0.1:1", "test-bridge", ["iotwatt/+/telemetry", "tele/+/SENSOR"], lambda *_: None, **kwargs)


def test_with_a_group_telemetry_is_shared_and_status_stays_plain():
    subscribed = bridge(status_topics=["iotwatt/+/status", "tele/+/LWT"], shared_group="plant").topics
    assert subscribed == ["$share/plant/iotwatt/+/telemetry", "$share/plant/tele/+/SENSOR", "iotwatt/+/status", "tele/+/LWT"]


def test_without_a_group_every_subscription_is_plain():
    assert bridge(status_topics=["iotwatt/+/status"], shared_group="").topics == ["iotwatt/+/telemetry", "tele/+/SENSOR", "iotwatt/+/status"]

"""10,000 generated malformed or hostile messages amid valid ones, through Mosquitto, the bridge and a worker.

No process crashes; every hostile message from a registered meter's topic becomes exactly
one dead letter with a reason; every valid reading, including the valid channels of a
message with a bad one, is stored; nothing hostile is stored.

Messages on topics no device claims (a registered meter's identifier in the wrong place)
are counted apart: unclaimed topics are to become pending devices rather than dead letters,
so for them the test asks only that they store nothing and make at most one dead letter.
"""

import base64
import random
import time
from collections import Counter

import pytest

from iotwatt.demo.publish import publish_all
from telemetry.models import DeadLetter, Reading

from .fleet import Fleet, register_fleet
from .hostile_payloads import FIRST_HOSTILE_TIME, MARKER, hostile_messages
from .pipeline import Pipeline, wait_until

pytestmark = [pytest.mark.pipeline, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

WRONG_TOPIC = "wrong topic for a registered device"
# 8 meters x 100 messages x 16 channels: 12,800 valid readings around the hostile messages.
FLEET = Fleet("hostilemeter", devices=8, messages_per_device=100)
SEED = 4


def marker_of(payload: str, is_base64: bool) -> str | None:
    """The marker of the hostile message a dead letter came from; a payload PostgreSQL cannot hold as
    text (binary, or text with NUL) is kept in base64, flagged."""
    head = base64.b64decode(payload[:88]).decode("utf-8", "replace") if is_base64 else payload[:64]
    found = MARKER.search(head)
    return found.group() if found else None


def stored_readings(identifiers: list[str]) -> set[tuple]:
    rows = Reading.objects.filter(channel__device__identifier__in=identifiers).values_list(
        "channel__device__identifier", "channel__key", "time", "value"
    )
    return set(rows)


def test_ten_thousand_hostile_messages_are_dead_letters_and_every_valid_reading_beside_them_is_stored(mosquitto, redis_url, tmp_path):
    register_fleet(FLEET.identifiers, "Hostile test site")
    hostile = hostile_messages(SEED, 10_500, FLEET.identifiers)
    from_registered_topics = [m for m in hostile if m.kind != WRONG_TOPIC]
    wrong_topics = [m for m in hostile if m.kind == WRONG_TOPIC]
    assert len(from_registered_topics) >= 10_000
    valid = FLEET.messages()
    assert FLEET.time(FLEET.messages_per_device) < FIRST_HOSTILE_TIME  # no valid reading shares a time with a hostile one
    stream = [(m.topic, m.payload) for m in hostile] + valid
    random.Random(SEED).shuffle(stream)
    expected = FLEET.expected_readings().union(*(m.valid_readings for m in hostile))
    # Published last: the bridge commits batches in order, so once it is stored every message before it is too.
    last_index = FLEET.messages_per_device
    last_topic, last_payload = FLEET.message(0, last_index)
    last_time = FLEET.time(last_index)
    expected |= {(FLEET.identifiers[0], key, last_time, float(value)) for key, (_, value) in FLEET.values(0, last_index).items()}

    pipeline = Pipeline(
        tmp_path, mosquitto.url, redis_url, client_id="iotwatt-hostile-bridge",
        env_overrides={
            # Topics beyond the devices' own, so messages on wrong topics reach the ingest too.
            "MQTT_TOPICS": "iotwatt/#",
            # Dead letters carry no key: a batch sent twice because it was slow would leave two of
            # each. This test is about payloads, not redelivery, so a slow batch is waited for.
            "INGEST_BATCH_TIMEOUT_S": "300",
        },
    ).start()
    try:
        started = time.monotonic()
        publish_all(mosquitto.url, "5", stream + [(last_topic, last_payload)], "hostile-publisher", progress=False)
        published_s = time.monotonic() - started
        wait_until(
            lambda: Reading.objects.filter(channel__device__identifier=FLEET.identifiers[0], time=last_time).exists(), 600,
            lambda: f"the last message's readings ({Reading.objects.count()} readings, {DeadLetter.objects.count()} dead letters so far)",
            poll_s=1,
        )
        ingested_s = time.monotonic() - started
        bridge_alive, worker_alive = pipeline.bridge.process.poll() is None, pipeline.worker.process.poll() is None
    finally:
        pipeline.stop()

    letters = list(DeadLetter.objects.values_list("topic", "payload", "payload_is_base64", "reason"))
    by_marker = Counter(marker_of(payload, is_base64) for _, payload, is_base64, _ in letters)
    worker_log, bridge_log = pipeline.worker.log_path.read_text(), pipeline.bridge.log_path.read_text()
    print(f"\nhostile test: {len(hostile):,} hostile messages ({len(wrong_topics)} on wrong topics) among {len(valid):,} valid ones; "
          f"published in {published_s:.1f} s, all ingested after {ingested_s:.1f} s; {len(letters):,} dead letters, "
          f"{len(expected):,} readings expected")
    for kind, count in sorted(Counter(m.kind for m in hostile).items(), key=lambda item: -item[1]):
        print(f"  {count:5d} {kind}")

    # No process crashed, no batch failed, no pool process was lost.
    assert bridge_alive and worker_alive
    for sign in ("Traceback", "WorkerLostError", "exited with", "raised unexpected"):
        assert sign not in worker_log, f"{sign!r} in {pipeline.worker.log_path}"
    assert "failed" not in bridge_log and "sending it again" not in bridge_log
    # Every hostile message from a registered meter's topic: exactly one dead letter, with a reason.
    missing = [m for m in from_registered_topics if by_marker[m.marker] != 1]
    assert not missing, f"{len(missing)} hostile messages without exactly one dead letter ({dict(Counter(m.kind for m in missing))}), e.g. " + ", ".join(
        f"{m.kind} {m.payload[:80]!r} x{by_marker[m.marker]}" for m in missing[:5]
    )
    assert all(reason.strip() for _, _, _, reason in letters)
    # Nothing else became a dead letter: no valid message, nothing unattributable.
    assert by_marker[None] == 0
    # Wrong topics: at most one dead letter each (none once unclaimed topics become pending devices).
    assert all(by_marker[m.marker] <= 1 for m in wrong_topics)
    # Every valid reading stored, the valid channels of mixed messages included, and nothing hostile.
    assert stored_readings(FLEET.identifiers) == expected

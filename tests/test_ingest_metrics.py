"""Ingest metrics: counted by the worker's task in the shared Redis hash, exposed for Prometheus and in the admin."""

import json

import pytest
from django.contrib.auth.models import User
from django.test import override_settings

from telemetry import metrics
from telemetry.tasks import ingest_batch
from tests.test_local_periods import make_channel, message

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def own_metrics(redis_url, settings):
    """The tests' Redis database, emptied: counts from another test never leak in."""
    settings.REDIS_URL = redis_url
    settings.INGEST_QUEUE = "ingest-metrics-test"
    metrics.reset()
    yield
    metrics.reset()


def metric_value(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in the exposition:\n{text}")


def test_a_batch_counts_messages_new_readings_repeats_and_dead_letters(client):
    make_channel("Europe/Berlin")
    batch = [
        message("m1", "2024-01-01T00:00:00+00:00", 1.0, received_at="2024-01-01T00:00:01+00:00"),
        message("m1", "2024-01-01T00:15:00+00:00", 2.0, received_at="2024-01-01T00:15:01+00:00"),
        {"topic": "iotwatt/m1/telemetry", "payload": "{broken", "received_at": "2024-01-01T00:15:02+00:00"},
    ]

    ingest_batch(batch)
    ingest_batch(batch[:2])  # a redelivery: valid again, stored no more

    body = client.get("/metrics").content.decode()
    assert metric_value(body, "iotwatt_ingest_messages_ingested_total") == 5
    assert metric_value(body, "iotwatt_ingest_readings_valid_total") == 4
    assert metric_value(body, "iotwatt_ingest_readings_stored_total") == 2
    assert metric_value(body, "iotwatt_ingest_dead_letters_total") == 1
    assert metric_value(body, "iotwatt_ingest_batches_committed_total") == 2
    assert metric_value(body, "iotwatt_ingest_reading_age_seconds_count") == 4
    # Measured in 2024, committed now: every age lies past the last finite bound.
    assert metric_value(body, 'iotwatt_ingest_reading_age_seconds_bucket{le="3600.0"}') == 0
    assert metric_value(body, "iotwatt_ingest_queue_depth") == 0


def test_queue_depth_counts_batches_waiting_in_the_queue(client, settings):
    metrics.client().rpush(settings.INGEST_QUEUE, json.dumps({"waiting": 1}), json.dumps({"waiting": 2}))
    try:
        body = client.get("/metrics").content.decode()
    finally:
        metrics.client().delete(settings.INGEST_QUEUE)
    assert metric_value(body, "iotwatt_ingest_queue_depth") == 2


def test_histogram_quantiles_are_the_bounds_that_hold_them():
    metrics.record({}, {"batch_commit_seconds": [0.02] * 98 + [0.6, 7.0]})

    histogram = metrics.snapshot().histograms["batch_commit_seconds"]

    assert histogram.count == 100
    assert histogram.quantile(0.5) == 0.025
    assert histogram.quantile(0.99) == 0.6
    assert histogram.quantile(1.0) == 10.0


@override_settings(METRICS_TOKEN="s3cret")
def test_a_metrics_token_is_asked_for_when_set(client):
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret").status_code == 200


def test_the_admin_page_shows_the_counts_to_superusers_only(client):
    make_channel("Europe/Berlin")
    ingest_batch([message("m1", "2024-01-01T00:00:00+00:00", 1.0)])
    staff = User.objects.create_user("staff", password="pw", is_staff=True)
    root = User.objects.create_superuser("root", password="pw")

    client.force_login(staff)
    assert client.get("/admin/ingest-status/").status_code == 302
    assert "Ingest status" not in client.get("/admin/").content.decode()

    client.force_login(root)
    page = client.get("/admin/ingest-status/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "readings stored" in text and "Batches waiting" in text
    assert "Ingest status" in client.get("/admin/").content.decode()


def test_metrics_do_not_fail_a_batch_when_redis_is_gone():
    make_channel("Europe/Berlin")

    with override_settings(REDIS_URL="redis://127.0.0.1:1/0"):  # nothing listens there
        result = ingest_batch([message("m1", "2024-01-01T00:00:00+00:00", 1.0)])

    assert result["new_readings"] == 1

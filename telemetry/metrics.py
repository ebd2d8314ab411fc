"""Ingest metrics shared by every bridge and worker, on every machine: kept in Redis, read by Prometheus.

Bridges and workers are separate processes, often on separate machines, so a
process-local registry would show one process's share. Each batch adds its
counts to one Redis hash in one round trip; `/metrics` and the admin read the
hash. Recording never fails a batch: the metrics are lost before a reading is.
"""

import logging
import math
from dataclasses import dataclass
from functools import lru_cache

import redis
from django.conf import settings
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

log = logging.getLogger(__name__)

HASH = "iotwatt:ingest-metrics"

# Seconds. Reading age at commit spans a live device's sub-second path and a
# backlog drained after an outage, so the buckets run from 10 ms to an hour.
LATENCY_BOUNDS = (
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.75, 0.9, 1.0,
    1.5, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0,
)

COUNTERS = {
    "messages_received": "MQTT messages the bridges received",
    "messages_ingested": "messages the workers committed (a redelivered message counts again)",
    "readings_valid": "valid readings in the committed messages",
    "readings_stored": "readings stored for the first time",
    "dead_letters": "messages (or parts of them) refused as dead letters, a repeat of one kept before included",
    "batches_committed": "batches committed",
    "batches_resent": "batches the bridges sent again after a failure or a timeout",
}

HISTOGRAMS = {
    "reading_age_seconds": "from a message's newest measurement time to the commit of its readings",
    "batch_commit_seconds": "from the first message of a batch reaching a bridge to the batch's commit",
}


def redis_url_for_client(url: str) -> str:
    """Celery spells a Unix socket redis+socket://; redis-py wants unix://."""
    return "unix://" + url.removeprefix("redis+socket://") if url.startswith("redis+socket://") else url


@lru_cache(maxsize=4)
def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url_for_client(url), socket_timeout=2, socket_connect_timeout=2)


def client() -> redis.Redis:
    return _client(settings.REDIS_URL)


def bucket_field(name: str, seconds: float) -> str:
    """Non-cumulative bucket counts are stored; the exposition makes them cumulative."""
    for bound in LATENCY_BOUNDS:
        if seconds <= bound:
            return f"{name}:le:{bound}"
    return f"{name}:le:+Inf"


def record(counts: dict[str, int], observations: dict[str, list[float]] | None = None) -> None:
    """Add counts and histogram observations, all in one round trip; never raises."""
    fields: dict[str, float] = {}
    for name, value in counts.items():
        if value:
            fields[name] = fields.get(name, 0) + value
    for name, values in (observations or {}).items():
        for seconds in values:
            field = bucket_field(name, seconds)
            fields[field] = fields.get(field, 0) + 1
        if values:
            fields[f"{name}:count"] = fields.get(f"{name}:count", 0) + len(values)
            fields[f"{name}:sum"] = fields.get(f"{name}:sum", 0) + sum(values)
    if not fields:
        return
    try:
        pipe = client().pipeline(transaction=False)
        for field, value in fields.items():
            if isinstance(value, int):
                pipe.hincrby(HASH, field, value)
            else:
                pipe.hincrbyfloat(HASH, field, value)
        pipe.execute()
    except redis.RedisError as exc:
        log.warning("ingest metrics not recorded: %s", exc)


@dataclass
class Histogram:
    buckets: list[tuple[float, int]]  # (upper bound, cumulative count), +Inf last
    count: int
    sum: float

    def quantile(self, q: float) -> float | None:
        """The upper bound of the bucket holding the q-quantile: an upper estimate, as Prometheus' own."""
        if not self.count:
            return None
        rank = q * self.count
        for bound, cumulative in self.buckets:
            if cumulative >= rank:
                return bound
        return math.inf


@dataclass
class Snapshot:
    counters: dict[str, int]
    histograms: dict[str, Histogram]
    queue_depth: int | None  # batches waiting for a worker; None when Redis is unreachable


def snapshot() -> Snapshot:
    try:
        raw = {key.decode(): float(value) for key, value in client().hgetall(HASH).items()}
        queue_depth = client().llen(settings.INGEST_QUEUE)
    except redis.RedisError as exc:
        log.warning("ingest metrics not readable: %s", exc)
        raw, queue_depth = {}, None
    counters = {name: int(raw.get(name, 0)) for name in COUNTERS}
    histograms = {}
    for name in HISTOGRAMS:
        cumulative, buckets = 0, []
        for bound in (*LATENCY_BOUNDS, math.inf):
            cumulative += int(raw.get(f"{name}:le:{'+Inf' if bound == math.inf else bound}", 0))
            buckets.append((bound, cumulative))
        histograms[name] = Histogram(buckets, int(raw.get(f"{name}:count", 0)), raw.get(f"{name}:sum", 0.0))
    return Snapshot(counters, histograms, queue_depth)


def reset() -> None:
    """For benchmarks and tests: start the counts from zero."""
    client().delete(HASH)


class IngestCollector:
    """Exposes the shared counts in Prometheus' format at scrape time."""

    def collect(self):
        snap = snapshot()
        for name, help_text in COUNTERS.items():
            yield CounterMetricFamily(f"iotwatt_ingest_{name}", help_text, value=snap.counters[name])
        for name, help_text in HISTOGRAMS.items():
            histogram = snap.histograms[name]
            yield HistogramMetricFamily(
                f"iotwatt_ingest_{name}",
                help_text,
                buckets=[("+Inf" if bound == math.inf else str(bound), count) for bound, count in histogram.buckets],
                sum_value=histogram.sum,
            )
        if snap.queue_depth is not None:
            yield GaugeMetricFamily("iotwatt_ingest_queue_depth", "batches waiting for an ingest worker", value=snap.queue_depth)

"""The ingest metrics as pages: Prometheus' text format at /metrics, and a page in the admin."""

import hmac

from django.conf import settings
from django.http import HttpResponse
from django.shortcuts import render
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import CollectorRegistry

from . import metrics

_registry = CollectorRegistry(auto_describe=False)
_registry.register(metrics.IngestCollector())


def prometheus_metrics(request):
    """Open unless METRICS_TOKEN is set; then Prometheus sends it as `Authorization: Bearer <token>`."""
    if settings.METRICS_TOKEN:
        given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), settings.METRICS_TOKEN.encode()):
            return HttpResponse("a bearer token is required\n", status=401, content_type="text/plain")
    return HttpResponse(generate_latest(_registry), content_type=CONTENT_TYPE_LATEST)


def ingest_status(request):
    """Admin page: the same figures as /metrics, readable by an operator."""
    snap = metrics.snapshot()
    latencies = []
    for name, help_text in metrics.HISTOGRAMS.items():
        histogram = snap.histograms[name]
        latencies.append(
            {
                "name": name.replace("_", " "),
                "help": help_text,
                "count": histogram.count,
                "p50": histogram.quantile(0.5),
                "p99": histogram.quantile(0.99),
                "mean": histogram.sum / histogram.count if histogram.count else None,
            }
        )
    context = {
        "title": "Ingest status",
        "counters": [(name.replace("_", " "), help_text, snap.counters[name]) for name, help_text in metrics.COUNTERS.items()],
        "latencies": latencies,
        "queue_depth": snap.queue_depth,
        "queue": settings.INGEST_QUEUE,
    }
    return render(request, "admin/telemetry/ingest_status.html", context)

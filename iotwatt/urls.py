from django.contrib import admin
from django.contrib.auth.decorators import user_passes_test
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from telemetry.metrics_views import ingest_status, prometheus_metrics

urlpatterns = [
    # Superusers only, like the dead letters it links to: the figures span every organisation.
    path("admin/ingest-status/", admin.site.admin_view(user_passes_test(lambda u: u.is_superuser)(ingest_status)), name="ingest-status"),
    path("admin/", admin.site.urls),
    path("metrics", prometheus_metrics, name="metrics"),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/", include("assets.api_urls")),
    path("api/", include("control.api_urls")),
    path("api/", include("telemetry.api_urls")),
]

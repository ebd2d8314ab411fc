"""The telemetry app's REST routes, mounted under /api/ by iotwatt/urls.py."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from .api import PendingDeviceViewSet
from .upload_views import InfluxWrite

router = SimpleRouter()
router.register("pending-devices", PendingDeviceViewSet, basename="pendingdevice")

# IoTaWatt's InfluxDB uploader: server https://<host>/api/ingest/iotawatt/influx (v1 appends /write, v2 /api/v2/write).
urlpatterns = router.urls + [
    path("ingest/iotawatt/influx/write", InfluxWrite.as_view(), name="iotawatt-influx-v1"),
    path("ingest/iotawatt/influx/api/v2/write", InfluxWrite.as_view(), name="iotawatt-influx-v2"),
]

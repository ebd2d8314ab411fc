"""The telemetry app's REST routes, mounted under /api/ by iotwatt/urls.py."""

from rest_framework.routers import SimpleRouter

from .api import PendingDeviceViewSet

router = SimpleRouter()
router.register("pending-devices", PendingDeviceViewSet, basename="pendingdevice")

urlpatterns = router.urls

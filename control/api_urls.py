"""The device parameter API's routes, mounted under /api/ by iotwatt/urls.py next to the assets routes."""

from rest_framework.routers import SimpleRouter

from . import views

router = SimpleRouter()
router.register("devices", views.DeviceParameterViewSet, basename="deviceparameters")
router.register("change-sets", views.ChangeSetViewSet, basename="changeset")
router.register("parameter-changes", views.ParameterChangeViewSet, basename="parameterchange")

urlpatterns = router.urls

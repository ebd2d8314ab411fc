"""The REST API's routes, mounted under /api/ by iotwatt/urls.py."""

from django.urls import path
from rest_framework.authtoken.views import obtain_auth_token
from rest_framework.routers import DefaultRouter

from . import views

router = DefaultRouter()
router.register("organisations", views.OrganisationViewSet, basename="organisation")
router.register("memberships", views.MembershipViewSet, basename="membership")
router.register("sites", views.SiteViewSet, basename="site")
router.register("asset-types", views.AssetTypeViewSet, basename="assettype")
router.register("assets", views.AssetViewSet, basename="asset")
router.register("device-models", views.DeviceModelViewSet, basename="devicemodel")
router.register("devices", views.DeviceViewSet, basename="device")
router.register("channels", views.ChannelViewSet, basename="channel")

urlpatterns = [
    path("auth/token/", obtain_auth_token, name="api-token"),
    *router.urls,
]

"""The REST API's routes, mounted under /api/ by iotwatt/urls.py."""

from django.urls import path
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.routers import DefaultRouter

from . import views

class TokenView(ObtainAuthToken):
    """A token for a username and password, a few tries a minute per client address (API_TOKEN_RATE)."""

    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "token"


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
    path("auth/token/", TokenView.as_view(), name="api-token"),
    *router.urls,
]

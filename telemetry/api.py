"""Pending devices over the REST API: list them, adopt one. Superusers only, as in the admin.

Adoption takes the same input and the same checks as the admin's form (telemetry/forms.py),
so the two can never disagree about what may be adopted.
"""

from django.core.exceptions import ValidationError
from django.db.models import Count
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import BasePermission
from rest_framework.response import Response

from assets.views import Pagination

from .adoption import adopt
from .forms import AdoptPendingDeviceForm
from .models import PendingDevice


class IsSuperuser(BasePermission):
    """A pending device belongs to no organisation: its topic and payload may be anyone's."""

    def has_permission(self, request, view):
        return bool(request.user and request.user.is_superuser)


class PendingDeviceSerializer(serializers.ModelSerializer):
    kept_count = serializers.IntegerField(read_only=True, help_text="Messages kept for adoption")

    class Meta:
        model = PendingDevice
        fields = ["id", "identifier", "first_seen", "last_seen", "message_count", "kept_count", "dropped_count",
                  "last_topic", "last_payload", "last_payload_is_base64", "matching_models"]
        read_only_fields = fields


ADOPT_REQUEST = inline_serializer("AdoptPendingDevice", {
    "device_model": serializers.IntegerField(help_text="Its topic patterns decide the device's identifier"),
    "site": serializers.IntegerField(),
    "name": serializers.CharField(required=False, allow_blank=True),
    "create_channels": serializers.BooleanField(default=True, help_text="Create the channels the kept payloads decode to"),
})
ADOPT_RESPONSE = inline_serializer("PendingDeviceAdopted", {
    "device": serializers.IntegerField(),
    "identifier": serializers.CharField(),
    "channels_created": serializers.ListField(child=serializers.DictField()),
    "messages": serializers.IntegerField(),
    "readings": serializers.IntegerField(),
    "dead_letters": serializers.IntegerField(),
    "left_pending": serializers.IntegerField(),
})


class PendingDeviceViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = PendingDevice.objects.annotate(kept_count=Count("messages")).order_by("-last_seen", "id")
    serializer_class = PendingDeviceSerializer
    permission_classes = [IsSuperuser]
    pagination_class = Pagination

    @extend_schema(request=ADOPT_REQUEST, responses={201: ADOPT_RESPONSE, 400: OpenApiResponse(description="What is wrong, by field")})
    @action(detail=True, methods=["post"])
    def adopt(self, request, pk=None):
        pending = self.get_object()
        given = request.data if hasattr(request.data, "get") else {}  # a JSON list or number is no adoption
        data = {key: given.get(key) for key in ("device_model", "site", "name", "create_channels") if given.get(key) is not None}
        data.setdefault("create_channels", True)  # the API's default, as the admin form's box is ticked
        form = AdoptPendingDeviceForm(data, pending=pending, user=request.user)
        if not form.is_valid():
            return Response(form.errors.get_json_data(), status=status.HTTP_400_BAD_REQUEST)
        cleaned = form.cleaned_data
        try:
            adoption = adopt(pending, cleaned["device_model"], cleaned["site"], cleaned["name"], cleaned["create_channels"])
        except ValidationError as exc:
            return Response({"non_field_errors": exc.messages}, status=status.HTTP_400_BAD_REQUEST)
        return Response({
            "device": adoption.device.pk,
            "identifier": adoption.device.identifier,
            "channels_created": [{"id": c.pk, "key": c.key, "metric": c.metric} for c in adoption.channels_created],
            "messages": adoption.replay.messages,
            "readings": adoption.replay.readings,
            "dead_letters": adoption.replay.dead_letters,
            "left_pending": adoption.replay.left_pending,
        }, status=status.HTTP_201_CREATED)

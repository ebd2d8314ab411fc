"""REST API of device parameters. Tenancy as in assets/views.py: reading what the user may see,
changing where their role allows; another organisation's device answers 404.

Changes are asked for here and delivered by Celery tasks after the commit (control/tasks.py).
"""

import django_filters
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied
from rest_framework.response import Response

from assets.models import Device
from assets.views import TenantScopedViewSet, scoped

from . import serializers as s
from .bulk import preview, preview_summary, start
from .changes import ChangeRefused, request_changes
from .models import BulkChange, ChangeSet, ParameterEvent
from .overview import device_overview
from .selection import SelectionNotWritable, SelectionRefused, selection_record, writable_selection

REFUSED = OpenApiResponse(description="A value breaks its parameter's rule (each parameter named with its rule), or the selection is wrong")

# Written out rather than ValuesSerializer: for a PATCH the schema generator would make `values` optional.
VALUES_BODY = {
    "type": "object",
    "properties": {"values": {"type": "object", "additionalProperties": True, "description": 'The parameters to set, by key: {"ct_ratio": 200}'}},
    "required": ["values"],
}


def refusal(problems: dict[str, str]) -> serializers.ValidationError:
    """ChangeRefused's problems as a 400: {"values": {"ct_ratio": ["ct_ratio: 150 is not one of ..."]}}; a
    problem of the device itself (its model declares no parameters) under "device"."""
    body = {}
    for key, message in problems.items():
        if key == "device":
            body["device"] = [message]
        else:
            body.setdefault("values", {})[key] = [message]
    return serializers.ValidationError(body)


class DeviceParameterViewSet(TenantScopedViewSet):
    """A device's parameters and their history, under /api/devices/{id}/."""

    queryset = Device.objects.select_related("device_model")
    organisation_path = ("site", "organisation_id")
    filter_backends = []
    serializer_class = s.DeviceParametersSerializer

    @extend_schema(summary="The device's parameters: definition, desired, reported and state of each")
    @action(detail=True, methods=["get"], pagination_class=None)
    def parameters(self, request, pk=None):
        return Response(s.DeviceParametersSerializer(device_overview(self.get_object())).data)

    @extend_schema(
        summary="Set parameters of the device",
        request={"application/json": VALUES_BODY},
        responses={
            202: OpenApiResponse(s.ChangeRequestedSerializer, description="A change set carries the values to the device"),
            200: OpenApiResponse(s.ChangeRequestedSerializer, description="Nothing to send: the device has these values or they are on their way"),
            400: REFUSED,
        },
    )
    @parameters.mapping.patch
    def change_parameters(self, request, pk=None):
        device = self.get_object()
        body = s.ValuesSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            change_set = request_changes(device, body.validated_data["values"], actor=request.user)
        except ChangeRefused as exc:
            raise refusal(exc.problems) from exc
        if change_set is None:
            answer = {"detail": "Nothing to send: the device already has these values, or they are on their way.", "change_set": None}
            return Response(s.ChangeRequestedSerializer(answer).data, status=status.HTTP_200_OK)
        answer = {"detail": f"Change set version {change_set.version} is on its way to the device.", "change_set": change_set}
        return Response(s.ChangeRequestedSerializer(answer).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(summary="Set parameters of the device (as PATCH)", request=s.ValuesSerializer,
                   responses={202: s.ChangeRequestedSerializer, 200: s.ChangeRequestedSerializer, 400: REFUSED})
    @parameters.mapping.post
    def post_parameters(self, request, pk=None):
        return self.change_parameters(request, pk)

    @extend_schema(summary="The audit of the device's parameters, newest first", responses=s.ParameterEventSerializer(many=True))
    @action(detail=True, methods=["get"], url_path="parameter-history")
    def parameter_history(self, request, pk=None):
        device = self.get_object()
        events = ParameterEvent.objects.filter(device=device).select_related("actor", "change_set").order_by("-at", "-id")
        page = self.paginate_queryset(events)
        return self.get_paginated_response(s.ParameterEventSerializer(page, many=True).data)


class ChangeSetFilter(django_filters.FilterSet):
    device = django_filters.ModelChoiceFilter(queryset=scoped(Device))
    bulk_change = django_filters.ModelChoiceFilter(queryset=scoped(BulkChange))

    class Meta:
        model = ChangeSet
        fields = ["device", "state", "bulk_change"]


class ChangeSetViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    """Change sets: what each message carried to a device, and what came of it. Read-only."""

    queryset = ChangeSet.objects.select_related("created_by")
    serializer_class = s.ChangeSetSerializer
    organisation_path = ("device", "site", "organisation_id")
    filterset_class = ChangeSetFilter
    ordering = ["-id"]
    ordering_fields = ["id", "version", "created_at", "state"]


class ParameterChangeViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    """One parameter change for many devices, chosen by device model, site, tag or a list (all criteria given
    must hold). The devices must belong to one organisation where you may make changes."""

    queryset = BulkChange.objects.select_related("created_by")
    serializer_class = s.BulkChangeSerializer
    organisation_path = ("organisation", "id")
    filter_backends = []
    ordering = ["-id"]

    def get_serializer_class(self):
        return s.BulkChangeProgressSerializer if self.action == "retrieve" else super().get_serializer_class()

    def chosen(self):
        """The organisation, the devices and the values of the request's selection, or a 400/403."""
        selection = s.SelectionSerializer(data=self.request.data, context=self.get_serializer_context())
        selection.is_valid(raise_exception=True)
        try:
            organisation, devices = writable_selection(self.request.user, **selection.criteria())
        except SelectionNotWritable as exc:
            raise PermissionDenied(str(exc)) from exc
        except SelectionRefused as exc:
            raise serializers.ValidationError({"selection": [str(exc)]}) from exc
        return organisation, devices, selection

    @extend_schema(summary="What the change would do to each device; changes nothing",
                   request=s.SelectionSerializer, responses={200: s.PreviewSerializer, 400: REFUSED})
    @action(detail=False, methods=["post"])
    def preview(self, request):
        _, devices, selection = self.chosen()
        rows = preview(devices, selection.validated_data["values"])
        return Response(s.PreviewSerializer({"summary": preview_summary(rows), "rows": rows}).data)

    @extend_schema(
        summary="Start the change on every chosen device",
        request=s.SelectionSerializer,
        responses={
            202: OpenApiResponse(s.BulkChangeStartedSerializer, description="Started; follow progress_url"),
            200: OpenApiResponse(s.NothingToSendSerializer, description="Nothing to send: every device already has the values"),
            400: REFUSED,
        },
    )
    def create(self, request):
        organisation, devices, selection = self.chosen()
        values = selection.validated_data["values"]
        rows = preview(devices, values)
        summary = preview_summary(rows)
        if summary["to_send"] == 0:
            refused = {key: message for row in rows for key, message in row.refused.items()}
            if refused:
                raise refusal(refused)
            answer = {"detail": "Nothing to send: every chosen device already has these values.", "summary": summary}
            return Response(s.NothingToSendSerializer(answer).data, status=status.HTTP_200_OK)
        bulk = start(organisation, devices, values, selection_record(**selection.criteria()), actor=request.user)
        return Response(s.BulkChangeStartedSerializer(bulk, context=self.get_serializer_context()).data, status=status.HTTP_202_ACCEPTED)

"""REST API viewsets. Tenancy: every queryset goes through `tenancy.visible`, every write
through `tenancy.can_write_in` (operators and admins; admins only for memberships and the
organisation itself) of the organisation the object belongs to, before and after the change.
An object of another organisation answers 404, as if it did not exist.
"""

import django_filters
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import ProtectedError, RestrictedError
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import APIException, PermissionDenied
from rest_framework.filters import OrderingFilter
from rest_framework.pagination import PageNumberPagination
from rest_framework.permissions import SAFE_METHODS, BasePermission, IsAuthenticated
from rest_framework.response import Response

from telemetry.asset_energy import asset_scope, site_scope

from . import serializers as s
from .energy_api import (
    AssetEnergySerializer,
    ChannelEnergySerializer,
    EnergyActionsMixin,
    SiteEnergySerializer,
    channel_scope,
    demand_schema,
    energy_schema,
)
from .models import Asset, AssetType, Channel, Device, DeviceModel, Membership, Organisation, Site
from .tenancy import can_write_in, organisation_ids, visible, writer_roles
from .tree import ancestor_ids, subtree_parents


class Pagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500


class Conflict(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "Other objects still refer to this one."
    default_code = "conflict"


class TenantWritePermission(BasePermission):
    """Reading needs a login; writing needs a writing role (tenancy.writer_roles) in the object's organisation."""

    message = "Your role in this organisation does not allow changes."

    def has_permission(self, request, view):
        if request.method in SAFE_METHODS or request.user.is_superuser:
            return True
        # A user with no writing role anywhere (a viewer) is refused before anything is looked up.
        return bool(organisation_ids(request.user, writer_roles(view.queryset.model)))

    def has_object_permission(self, request, view, obj):
        if request.method in SAFE_METHODS:
            return True
        return view.can_write(view.organisation_id_of(obj))


def scoped(model):
    """A filter's choices: the objects the requesting user may see (others are "not a valid choice")."""

    def queryset(request):
        if request is None:
            return model.objects.none()
        return visible(model.objects.all(), request.user)

    return queryset


def has_tag(queryset, name, value):
    """The `tag` filter of objects with tags (assets, devices)."""
    return queryset.filter(tags__contains=[value])


class TenantScopedViewSet(viewsets.GenericViewSet):
    """Lookups among what the user may see, writes where their role allows; no actions of its own."""

    permission_classes = [IsAuthenticated, TenantWritePermission]
    pagination_class = Pagination
    filter_backends = [DjangoFilterBackend, OrderingFilter]
    ordering = ["id"]
    # How the object reaches its organisation's id: the first name is a field of the object
    # (taken from the submitted data when it changes), the rest are attributes from there.
    organisation_path: tuple[str, ...] = ()

    def get_queryset(self):
        return visible(self.queryset.all(), self.request.user)

    def can_write(self, organisation_id) -> bool:
        return can_write_in(self.request.user, organisation_id, self.queryset.model)

    def organisation_id_of(self, instance=None, data=None):
        data = data or {}
        first, *rest = self.organisation_path
        value = data[first] if first in data else getattr(instance, first, None)
        for name in rest:
            if value is None:
                return None
            value = getattr(value, name)
        return value


class TenantViewSet(
    mixins.CreateModelMixin, mixins.RetrieveModelMixin, mixins.UpdateModelMixin, mixins.DestroyModelMixin,
    mixins.ListModelMixin, TenantScopedViewSet,
):
    """The tenant-scoped ModelViewSet of the assets API."""

    def check_target(self, instance, values):
        """The organisation the object goes to must be writable (the one it came from was checked on lookup).
        Serializers call this as soon as their fields are valid; saving checks again."""
        if not self.can_write(self.organisation_id_of(instance, values)):
            raise PermissionDenied(TenantWritePermission.message)

    def perform_create(self, serializer):
        self.check_target(None, serializer.validated_data)
        save_or_400(serializer)

    def perform_update(self, serializer):
        self.check_target(serializer.instance, serializer.validated_data)
        save_or_400(serializer)

    def perform_destroy(self, instance):
        try:
            instance.delete()
        except (ProtectedError, RestrictedError) as exc:
            blocking = getattr(exc, "protected_objects", None) or exc.restricted_objects
            names = sorted({str(obj._meta.verbose_name_plural) for obj in blocking})
            raise Conflict(f"This object is still used by {', '.join(names)}; delete or change those first.") from exc


def save_or_400(serializer) -> None:
    """The model checks again under its lock on save (a concurrent move may have changed the tree since
    the serializer looked): its refusal is the client's 400, not a server error."""
    try:
        serializer.save()
    except DjangoValidationError as exc:
        raise serializers.ValidationError(exc.message_dict if hasattr(exc, "error_dict") else exc.messages) from exc


class OrganisationViewSet(TenantViewSet):
    """Organisations you belong to. Their admins rename them; only superusers create or delete them."""

    queryset = Organisation.objects.all()
    serializer_class = s.OrganisationSerializer
    ordering_fields = ["id", "name", "slug"]
    filterset_fields = ["slug"]

    def organisation_id_of(self, instance=None, data=None):
        return instance.pk if instance is not None else None

    def check_permissions(self, request):
        super().check_permissions(request)
        if self.action == "create" and not request.user.is_superuser:
            self.permission_denied(request, message="Only superusers create organisations.")

    def check_object_permissions(self, request, obj):
        super().check_object_permissions(request, obj)  # after the lookup: another organisation's is a 404
        if self.action == "destroy" and not request.user.is_superuser:
            self.permission_denied(request, message="Only superusers delete organisations.")


class MembershipFilter(django_filters.FilterSet):
    organisation = django_filters.ModelChoiceFilter(queryset=scoped(Organisation))
    user = django_filters.CharFilter(field_name="user__username")

    class Meta:
        model = Membership
        fields = ["organisation", "user", "role"]


class MembershipViewSet(TenantViewSet):
    """Who belongs to your organisations, with which role. Members read; organisation admins manage."""

    queryset = Membership.objects.select_related("user")
    serializer_class = s.MembershipSerializer
    organisation_path = ("organisation", "id")
    filterset_class = MembershipFilter
    ordering_fields = ["id", "role", "user__username"]

    def perform_destroy(self, instance):
        if instance.role == Membership.Role.ADMIN and not s.other_admins(instance).exists():
            raise serializers.ValidationError({"role": ["The organisation's last admin cannot be removed."]})
        super().perform_destroy(instance)


class SiteFilter(django_filters.FilterSet):
    organisation = django_filters.ModelChoiceFilter(queryset=scoped(Organisation))

    class Meta:
        model = Site
        fields = ["organisation", "timezone"]


@extend_schema_view(energy=energy_schema("site", SiteEnergySerializer), demand=demand_schema("site"))
class SiteViewSet(EnergyActionsMixin, TenantViewSet):
    """Sites. `energy/` and `demand/`: the asset rules applied to each of the site's root assets, added up."""

    energy_answer_name = "site"
    energy_answer_serializer = SiteEnergySerializer
    queryset = Site.objects.all()
    serializer_class = s.SiteSerializer
    organisation_path = ("organisation", "id")
    filterset_class = SiteFilter
    ordering_fields = ["id", "name", "timezone"]

    def energy_scope(self, obj):
        return site_scope(obj)

    def site_of(self, obj):
        return obj


class AssetTypeFilter(django_filters.FilterSet):
    organisation = django_filters.ModelChoiceFilter(queryset=scoped(Organisation))
    shared = django_filters.BooleanFilter(field_name="organisation", lookup_expr="isnull", label="Standard types only (or none of them)")

    class Meta:
        model = AssetType
        fields = ["organisation", "shared", "key", "can_be_root"]


class AssetTypeViewSet(TenantViewSet):
    """Standard types (organisation empty) are read-only; operators manage their organisation's own types."""

    queryset = AssetType.objects.prefetch_related("allowed_parents")
    serializer_class = s.AssetTypeSerializer
    organisation_path = ("organisation", "id")
    filterset_class = AssetTypeFilter
    ordering_fields = ["id", "key", "name"]


class AssetFilter(django_filters.FilterSet):
    site = django_filters.ModelChoiceFilter(queryset=scoped(Site))
    asset_type = django_filters.ModelChoiceFilter(queryset=scoped(AssetType))
    parent = django_filters.ModelChoiceFilter(queryset=scoped(Asset))
    root = django_filters.BooleanFilter(field_name="parent", lookup_expr="isnull", label="Only roots (or only non-roots)")
    tag = django_filters.CharFilter(method=has_tag, label="Has this tag")

    class Meta:
        model = Asset
        fields = ["site", "asset_type", "parent", "root", "tag"]


@extend_schema_view(
    subtree=extend_schema(
        summary="The asset and everything below it, level by level", responses=s.AssetSerializer(many=True)
    ),
    ancestors=extend_schema(summary="The assets above this one, root first", responses=s.AssetSerializer(many=True)),
    energy=energy_schema("asset and its subtree", AssetEnergySerializer),
    demand=demand_schema("asset and its subtree"),
)
class AssetViewSet(EnergyActionsMixin, TenantViewSet):
    """The asset tree. Move an asset by changing its parent (PATCH)."""

    queryset = Asset.objects.all()
    serializer_class = s.AssetSerializer
    organisation_path = ("site", "organisation_id")
    filterset_class = AssetFilter
    ordering_fields = ["id", "name", "site", "asset_type", "parent"]

    def in_order(self, ids: list[int]) -> list[Asset]:
        by_id = visible(Asset.objects.filter(id__in=ids), self.request.user).in_bulk()
        return [by_id[i] for i in ids if i in by_id]

    @action(detail=True, filter_backends=[])
    def subtree(self, request, pk=None):
        asset = self.get_object()
        page = self.paginate_queryset(list(subtree_parents(asset.id)))  # ids, level by level from the asset
        return self.get_paginated_response(self.get_serializer(self.in_order(page), many=True).data)

    @action(detail=True, filter_backends=[], pagination_class=None)
    def ancestors(self, request, pk=None):
        asset = self.get_object()
        return Response(self.get_serializer(self.in_order(ancestor_ids(asset.id)), many=True).data)

    def energy_scope(self, obj):
        return asset_scope(obj)

    def site_of(self, obj):
        return obj.site


class DeviceModelFilter(django_filters.FilterSet):
    organisation = django_filters.ModelChoiceFilter(queryset=scoped(Organisation))
    shared = django_filters.BooleanFilter(field_name="organisation", lookup_expr="isnull", label="Built-in models only (or none of them)")

    class Meta:
        model = DeviceModel
        fields = ["organisation", "shared", "key", "manufacturer"]


class DeviceModelViewSet(TenantViewSet):
    """Built-in models (organisation empty) are read-only; operators manage their organisation's own models."""

    queryset = DeviceModel.with_map_version(DeviceModel.objects.all())
    serializer_class = s.DeviceModelSerializer
    organisation_path = ("organisation", "id")
    filterset_class = DeviceModelFilter
    ordering_fields = ["id", "key", "name", "manufacturer"]


class DeviceFilter(django_filters.FilterSet):
    site = django_filters.ModelChoiceFilter(queryset=scoped(Site))
    device_model = django_filters.ModelChoiceFilter(queryset=scoped(DeviceModel))
    tag = django_filters.CharFilter(method=has_tag, label="Has this tag")

    class Meta:
        model = Device
        fields = ["site", "device_model", "identifier", "tag"]


class DeviceViewSet(TenantViewSet):
    queryset = Device.objects.all()
    serializer_class = s.DeviceSerializer
    organisation_path = ("site", "organisation_id")
    filterset_class = DeviceFilter
    ordering_fields = ["id", "identifier", "name", "site", "device_model"]


class ChannelFilter(django_filters.FilterSet):
    device = django_filters.ModelChoiceFilter(queryset=scoped(Device))
    asset = django_filters.ModelChoiceFilter(queryset=scoped(Asset))
    site = django_filters.ModelChoiceFilter(field_name="device__site", queryset=scoped(Site))

    class Meta:
        model = Channel
        fields = ["device", "asset", "site", "role", "metric", "key"]


@extend_schema_view(energy=energy_schema("channel", ChannelEnergySerializer), demand=demand_schema("channel"))
class ChannelViewSet(EnergyActionsMixin, TenantViewSet):
    energy_answer_name = "channel"
    energy_answer_serializer = ChannelEnergySerializer
    energy_name = "energy"
    queryset = Channel.objects.all()
    serializer_class = s.ChannelSerializer
    organisation_path = ("device", "site", "organisation_id")
    filterset_class = ChannelFilter
    ordering_fields = ["id", "key", "name", "role", "metric", "device", "asset"]

    def energy_scope(self, obj):
        return channel_scope(obj)

    def site_of(self, obj):
        return obj.device.site

"""Which objects a user may see and change: those of the organisations they belong to.

Every API viewset and every admin page goes through these functions, so the rule
lives in one place. Superusers see everything. Shared catalogue rows (standard
asset types, built-in device models: organisation empty) are readable by all and
writable by superusers only.
"""

from django.db.models import Q, QuerySet

from .models import Asset, AssetType, Channel, Device, DeviceModel, Membership, Organisation, Site

# How each model reaches its organisation (the control app adds its models on ready).
ORGANISATION_PATH = {
    Organisation: "id",
    Membership: "organisation",
    Site: "organisation",
    Asset: "site__organisation",
    Device: "site__organisation",
    Channel: "device__site__organisation",
    AssetType: "organisation",
    DeviceModel: "organisation",
}
SHARED_CATALOGUES = {AssetType, DeviceModel}
WRITER_ROLES = {Membership.Role.OPERATOR, Membership.Role.ADMIN}
# The organisation itself and who belongs to it are managed by its admins only.
ADMIN_ONLY = {Organisation, Membership}


def writer_roles(model) -> set[str]:
    return {Membership.Role.ADMIN} if model in ADMIN_ONLY else WRITER_ROLES


def organisation_ids(user, roles=None) -> set[int]:
    if not user.is_authenticated:
        return set()
    memberships = Membership.objects.filter(user=user)
    if roles is not None:
        memberships = memberships.filter(role__in=roles)
    return set(memberships.values_list("organisation_id", flat=True))


def visible(queryset: QuerySet, user) -> QuerySet:
    """The objects of `queryset` the user may read."""
    if user.is_superuser:
        return queryset
    path = ORGANISATION_PATH[queryset.model]
    allowed = Q(**{f"{path}__in": organisation_ids(user)})
    if queryset.model in SHARED_CATALOGUES:
        allowed |= Q(**{f"{path}__isnull": True})
    return queryset.filter(allowed)


def writable(queryset: QuerySet, user) -> QuerySet:
    """The objects of `queryset` the user may change (operators and admins; admins only for the organisation and its members)."""
    if user.is_superuser:
        return queryset
    path = ORGANISATION_PATH[queryset.model]
    return queryset.filter(**{f"{path}__in": organisation_ids(user, writer_roles(queryset.model))})


def can_write_in(user, organisation_id: int | None, model=None) -> bool:
    """May the user create or change objects (of `model`, if given) in this organisation?"""
    if user.is_superuser:
        return True
    return organisation_id is not None and organisation_id in organisation_ids(user, writer_roles(model))

"""Tenant isolation of the REST API, walked over every endpoint the router exposes.

Organisations A and B each have a full set of objects. Members of A (viewer, operator,
admin) must never see B's objects, get 404 for B's detail URLs (and the detail actions
under them), and every write that targets or references B's objects must fail without
changing a row. The endpoints come from the router's registry, so a new endpoint is
walked as soon as it is registered (and fails here until it has a create payload).
"""

import uuid

import pytest
from django.urls import reverse
from django_filters.rest_framework import DjangoFilterBackend
from rest_framework import serializers
from rest_framework.test import APIClient

from assets.api_urls import router
from assets.models import AssetType, Channel, Membership, Organisation
from assets.tenancy import ORGANISATION_PATH, writer_roles
from telemetry.parameter_maps import IOTWATT_NATIVE

from .api_world import RACK_SCHEMA, build_world, make_user, rows_of, standard_type, token_client

pytestmark = pytest.mark.django_db

ENDPOINTS = {basename: viewset for _prefix, viewset, basename in router.registry}


@pytest.fixture
def a():
    return build_world("a")


@pytest.fixture
def b():
    return build_world("b")


def model_of(basename):
    return ENDPOINTS[basename].queryset.model


def can_write(role: str, basename: str) -> bool:
    """Whether a member with `role` may write this endpoint's objects in their own organisation."""
    return role in {str(r) for r in writer_roles(model_of(basename))}


def colleague(world, tag: str):
    """A user who already shares an organisation with every member of `world`: the only kind one may add."""
    user = make_user(f"newcomer-{tag}")
    shared = Organisation.objects.create(name=f"Shared {tag}", slug=f"shared-{tag}")
    for member in [user, *(m.user for m in world.memberships.values())]:
        Membership.objects.get_or_create(user=member, organisation=shared, defaults={"role": "viewer"})
    return user


def create_payload(basename: str, world) -> dict:
    """A valid new object of `world`'s organisation for each endpoint."""
    tag = uuid.uuid4().hex[:8]
    payloads = {
        "organisation": lambda: {"name": f"New {tag}", "slug": f"new-{tag}"},
        "membership": lambda: {"user": colleague(world, tag).username, "organisation": world.organisation.pk, "role": "viewer"},
        "site": lambda: {"organisation": world.organisation.pk, "name": f"Site {tag}", "timezone": "Europe/Madrid"},
        "assettype": lambda: {
            "key": f"type-{tag}", "name": f"Type {tag}", "organisation": world.organisation.pk,
            "allowed_parents": [world.asset_type.pk, standard_type("site").pk], "attribute_schema": RACK_SCHEMA,
        },
        "asset": lambda: {"site": world.site.pk, "parent": world.root.pk, "asset_type": world.asset_type.pk, "name": f"Asset {tag}"},
        "devicemodel": lambda: {"key": f"model-{tag}", "name": f"Model {tag}", "organisation": world.organisation.pk, "parameter_map": IOTWATT_NATIVE},
        "device": lambda: {"site": world.site.pk, "device_model": world.device_model.pk, "identifier": f"dev-{tag}"},
        "channel": lambda: {"device": world.device.pk, "key": f"ch-{tag}", "metric": "energy", "role": "sub_meter", "asset": world.circuit.pk},
    }
    assert basename in payloads, f"add a create payload for the new endpoint {basename!r} to this test"
    return payloads[basename]()


def snapshot() -> dict:
    """Every row the API could change."""
    rows = {model.__name__: list(model.objects.order_by("pk").values()) for model in ORGANISATION_PATH}
    rows["allowed_parents"] = list(AssetType.allowed_parents.through.objects.order_by("pk").values())
    return rows


def all_ids(client, url, params=None) -> set[int]:
    ids, page = set(), 1
    while True:
        response = client.get(url, {**(params or {}), "page": page, "page_size": 500})
        assert response.status_code == 200, response.content
        body = response.json()
        ids |= {row["id"] for row in body["results"]}
        if not body["next"]:
            return ids
        page += 1


def related_fields(basename) -> dict:
    """The serializer's writable related fields: name -> related model."""
    serializer = ENDPOINTS[basename].serializer_class(context={"request": None})
    result = {}
    for name, f in serializer.fields.items():
        if f.read_only:
            continue
        if isinstance(f, serializers.ManyRelatedField):
            result[name] = f.child_relation.queryset.model
        elif isinstance(f, serializers.PrimaryKeyRelatedField):
            result[name] = f.queryset.model
    return result


def detail_action_urls(basename, pk) -> list[str]:
    return [
        reverse(f"{basename}-{extra.url_name}", args=[pk])
        for extra in ENDPOINTS[basename].get_extra_actions()
        if extra.detail and "get" in extra.mapping
    ]


@pytest.fixture(params=["viewer", "operator", "admin"])
def role(request):
    return request.param


@pytest.mark.parametrize("basename", ENDPOINTS)
def test_lists_never_show_another_organisations_objects(basename, role, a, b):
    client = a.client(role)
    model = model_of(basename)
    shown = all_ids(client, reverse(f"{basename}-list"))
    assert shown, "A's own objects are listed"
    assert shown.isdisjoint(set(rows_of(b, model).values_list("pk", flat=True)))
    assert set(rows_of(a, model).values_list("pk", flat=True)) <= shown


@pytest.mark.parametrize("basename", ENDPOINTS)
def test_filters_naming_another_organisations_objects_show_nothing_of_it(basename, a, b):
    """?site=<B's site> is refused like an unknown id (or finds nothing), never B's rows."""
    client = a.client("operator")
    filterset = DjangoFilterBackend().get_filterset_class(ENDPOINTS[basename](), model_of(basename).objects.all())
    b_objects = b.objects()
    b_ids = set(rows_of(b, model_of(basename)).values_list("pk", flat=True))
    for name, f in filterset.base_filters.items():
        target = getattr(f, "queryset", None)
        if target is None:
            continue
        model = target.model if hasattr(target, "model") else target(None).model
        response = client.get(reverse(f"{basename}-list"), {name: b_objects[model].pk})
        assert response.status_code in (200, 400), (name, response.content)
        if response.status_code == 200:
            assert not {row["id"] for row in response.json()["results"]} & b_ids, name


@pytest.mark.parametrize("basename", ENDPOINTS)
def test_another_organisations_detail_urls_answer_404(basename, role, a, b):
    client = a.client(role)
    pk = b.objects()[model_of(basename)].pk
    assert client.get(reverse(f"{basename}-detail", args=[pk])).status_code == 404
    for url in detail_action_urls(basename, pk):
        assert client.get(url).status_code == 404, url
    # The same URLs for A's own object work, so the 404 above is the tenancy's doing.
    own = a.objects()[model_of(basename)].pk
    assert client.get(reverse(f"{basename}-detail", args=[own])).status_code == 200
    for url in detail_action_urls(basename, own):
        assert client.get(url).status_code == 200, url


@pytest.mark.parametrize("basename", ENDPOINTS)
def test_updates_and_deletes_of_another_organisations_objects_change_nothing(basename, role, a, b):
    client = a.client(role)
    obj = b.objects()[model_of(basename)]
    url = reverse(f"{basename}-detail", args=[obj.pk])
    payload = create_payload(basename, b)
    before = snapshot()
    # A writer of A gets 404 (B's object does not exist for them); a viewer is refused any write first.
    expected = 404 if can_write(role, basename) else 403
    assert client.put(url, payload, format="json").status_code == expected
    assert client.patch(url, {"name": "taken over"}, format="json").status_code == expected
    assert client.delete(url).status_code == expected
    assert snapshot() == before


@pytest.mark.parametrize("basename", ENDPOINTS)
def test_creates_in_or_referencing_another_organisation_change_nothing(basename, role, a, b):
    """A valid object of A, with one related field at a time pointing at B's object of that model."""
    client = a.client(role)
    url = reverse(f"{basename}-list")
    b_objects = b.objects()
    for name, model in related_fields(basename).items():
        payload = create_payload(basename, a)
        payload[name] = [b_objects[model].pk] if isinstance(payload.get(name), list) else b_objects[model].pk
        before = snapshot()
        response = client.post(url, payload, format="json")
        if can_write(role, basename):
            assert response.status_code == 400, (name, response.content)
            assert name in response.json(), (name, response.json())
            assert "does not exist" in str(response.json()[name]), response.json()
        else:
            assert response.status_code == 403
        assert snapshot() == before, name


@pytest.mark.parametrize("basename", ENDPOINTS)
def test_updates_of_own_objects_cannot_point_at_another_organisations_objects(basename, role, a, b):
    client = a.client(role)
    own = a.objects()[model_of(basename)]
    url = reverse(f"{basename}-detail", args=[own.pk])
    b_objects = b.objects()
    for name, model in related_fields(basename).items():
        value = [b_objects[model].pk] if name == "allowed_parents" else b_objects[model].pk
        before = snapshot()
        response = client.patch(url, {name: value}, format="json")
        assert response.status_code == (400 if can_write(role, basename) else 403), (name, response.content)
        assert snapshot() == before, name


@pytest.mark.parametrize("basename", ENDPOINTS)
def test_viewers_cannot_write_in_their_own_organisation(basename, a):
    client = a.client("viewer")
    own = a.objects()[model_of(basename)]
    url = reverse(f"{basename}-detail", args=[own.pk])
    payload = create_payload(basename, a)
    before = snapshot()
    assert client.post(reverse(f"{basename}-list"), payload, format="json").status_code == 403
    assert client.put(url, payload, format="json").status_code == 403
    assert client.patch(url, {"name": "renamed"}, format="json").status_code == 403
    assert client.delete(url).status_code == 403
    assert snapshot() == before


@pytest.mark.parametrize("basename", ENDPOINTS)
def test_writers_can_create_in_their_own_organisation(basename, a):
    """The payloads above are valid: the refusals come from the tenancy, not from bad data."""
    admin = a.client("admin")
    response = admin.post(reverse(f"{basename}-list"), create_payload(basename, a), format="json")
    if basename == "organisation":
        assert response.status_code == 403  # only superusers create organisations
    else:
        assert response.status_code == 201, response.content
    operator_expected = 201 if can_write("operator", basename) and basename != "organisation" else 403
    assert a.client("operator").post(reverse(f"{basename}-list"), create_payload(basename, a), format="json").status_code == operator_expected


@pytest.mark.parametrize("basename", ENDPOINTS)
def test_unauthenticated_requests_are_refused(basename, a):
    client = APIClient()
    pk = a.objects()[model_of(basename)].pk
    before = snapshot()
    assert client.get(reverse(f"{basename}-list")).status_code == 401
    assert client.get(reverse(f"{basename}-detail", args=[pk])).status_code == 401
    for url in detail_action_urls(basename, pk):
        assert client.get(url).status_code == 401
    assert client.post(reverse(f"{basename}-list"), {}, format="json").status_code == 401
    assert client.delete(reverse(f"{basename}-detail", args=[pk])).status_code == 401
    assert APIClient(HTTP_AUTHORIZATION="Token not-a-token").get(reverse(f"{basename}-list")).status_code == 401
    assert snapshot() == before


def test_every_registered_endpoint_is_walked():
    assert set(ENDPOINTS) == {"organisation", "membership", "site", "assettype", "asset", "devicemodel", "device", "channel"}
    assert {extra.url_name for extra in ENDPOINTS["asset"].get_extra_actions()} == {"subtree", "ancestors", "energy", "demand"}
    for basename in ("site", "channel"):
        assert {extra.url_name for extra in ENDPOINTS[basename].get_extra_actions()} == {"energy", "demand"}


# Beyond A and B alone


def test_a_viewer_of_b_reads_b_but_cannot_write_there_nor_link_it_to_a(a, b):
    user = a.users["operator"]
    Membership.objects.create(user=user, organisation=b.organisation, role=Membership.Role.VIEWER)
    client = token_client(user)
    assert client.get(reverse("site-detail", args=[b.site.pk])).status_code == 200
    before = snapshot()
    assert client.patch(reverse("site-detail", args=[b.site.pk]), {"name": "x"}, format="json").status_code == 403
    assert client.post(reverse("asset-list"), create_payload("asset", b), format="json").status_code == 403
    # Visible objects of B still cannot be tied into A's objects.
    assert client.patch(reverse("asset-detail", args=[a.rack.pk]), {"parent": b.root.pk}, format="json").status_code == 400
    assert client.patch(reverse("channel-detail", args=[a.channel.pk]), {"asset": b.panel.pk}, format="json").status_code == 400
    response = client.post(reverse("asset-list"), {**create_payload("asset", a), "asset_type": b.asset_type.pk}, format="json")
    assert response.status_code == 400 and "asset_type" in response.json()
    response = client.post(reverse("device-list"), {**create_payload("device", a), "device_model": b.device_model.pk}, format="json")
    assert response.status_code == 400 and "device_model" in response.json()
    # Moving A's channel onto B's device would put it in B, where this user only reads.
    url = reverse("channel-detail", args=[a.channel.pk])
    assert client.patch(url, {"device": b.device.pk, "key": "moved"}, format="json").status_code == 403
    assert snapshot() == before


def test_shared_catalogue_rows_are_read_only_for_members(a):
    client = a.client("admin")
    site_type = standard_type("site")
    before = snapshot()
    assert client.get(reverse("assettype-detail", args=[site_type.pk])).status_code == 200
    assert client.patch(reverse("assettype-detail", args=[site_type.pk]), {"name": "Mine"}, format="json").status_code == 403
    assert client.delete(reverse("assettype-detail", args=[site_type.pk])).status_code == 403
    payload = {**create_payload("assettype", a), "organisation": None}
    assert client.post(reverse("assettype-list"), payload, format="json").status_code == 403
    payload = {**create_payload("devicemodel", a)}
    del payload["organisation"]
    assert client.post(reverse("devicemodel-list"), payload, format="json").status_code == 403
    assert snapshot() == before


def test_only_organisation_admins_manage_memberships(a):
    url = reverse("membership-detail", args=[a.memberships["viewer"].pk])
    assert a.client("operator").patch(url, {"role": "admin"}, format="json").status_code == 403
    assert a.client("admin").patch(url, {"role": "operator"}, format="json").status_code == 200
    a.memberships["viewer"].refresh_from_db()
    assert a.memberships["viewer"].role == "operator"
    # The last admin can neither step down nor be removed.
    admin_url = reverse("membership-detail", args=[a.memberships["admin"].pk])
    assert a.client("admin").patch(admin_url, {"role": "viewer"}, format="json").status_code == 400
    assert a.client("admin").delete(admin_url).status_code == 400
    assert Membership.objects.filter(pk=a.memberships["admin"].pk, role="admin").exists()


def test_members_see_their_organisations_members_only(a, b):
    shown = all_ids(a.client("viewer"), reverse("membership-list"))
    assert shown == set(Membership.objects.filter(organisation=a.organisation).values_list("pk", flat=True))


def test_superusers_see_and_manage_everything(a, b):
    client = token_client(make_user("root", is_superuser=True, is_staff=True))
    assert {a.organisation.pk, b.organisation.pk} <= all_ids(client, reverse("organisation-list"))
    response = client.post(reverse("organisation-list"), {"name": "C", "slug": "c-org"}, format="json")
    assert response.status_code == 201
    assert client.delete(reverse("organisation-detail", args=[response.json()["id"]])).status_code == 204
    assert not Organisation.objects.filter(slug="c-org").exists()


def test_an_asset_type_in_use_is_not_deleted(a):
    response = a.client("operator").delete(reverse("assettype-detail", args=[a.asset_type.pk]))
    assert response.status_code == 409
    assert AssetType.objects.filter(pk=a.asset_type.pk).exists()


def test_operators_write_assets_devices_channels_and_sites_of_their_organisation(a):
    client = a.client("operator")
    assert client.patch(reverse("site-detail", args=[a.site.pk]), {"name": "Renamed"}, format="json").status_code == 200
    assert client.patch(reverse("channel-detail", args=[a.channel.pk]), {"role": "sub_meter"}, format="json").status_code == 200
    assert client.delete(reverse("channel-detail", args=[a.channel.pk])).status_code == 204
    assert not Channel.objects.filter(pk=a.channel.pk).exists()
    assert client.delete(reverse("asset-detail", args=[a.rack.pk])).status_code == 204


def test_an_admin_cannot_add_or_even_see_a_user_who_shares_no_organisation(a, b):
    stranger = b.memberships["viewer"].user
    response = a.client("admin").post(
        reverse("membership-list"), {"user": stranger.username, "organisation": a.organisation.pk, "role": "viewer"}, format="json"
    )
    assert response.status_code == 400
    assert "does not exist" in str(response.json()["user"])
    assert not Membership.objects.filter(user=stranger, organisation=a.organisation).exists()


def test_a_key_another_organisation_uses_is_free_here_and_reveals_nothing(a, b):
    b_type = b.asset_type
    payload = {"key": b_type.key, "name": "Mine", "organisation": a.organisation.pk, "attribute_schema": {"type": "object"}}
    response = a.client("operator").post(reverse("assettype-list"), payload, format="json")
    assert response.status_code == 201, response.content
    again = a.client("operator").post(reverse("assettype-list"), {**payload, "name": "Twice"}, format="json")
    assert again.status_code == 400  # taken in the caller's own organisation only

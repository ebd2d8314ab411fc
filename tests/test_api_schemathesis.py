"""Schemathesis against the OpenAPI schema: generated requests to every operation never get a 5xx.

The requests go straight into the WSGI app, inside the test's database transaction, as an
operator of an organisation with a full set of objects. Random ids would almost never name
an existing object, so most generated ids (in paths, bodies and filters) are swapped for the
ids of real objects, the operator's own and another organisation's, to reach the code behind
the lookups. Bounded by max_examples so the whole run stays well under two minutes.
"""

import os

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from assets.api_urls import router
from assets.models import Asset, AssetType, Channel, Device, DeviceModel, Membership, Organisation, Site
from control.api_urls import router as control_router
from control.bulk import start
from control.changes import request_changes
from control.models import BulkChange, ChangeSet
from iotwatt.wsgi import application

from .api_world import build_world, rows_of, token_client

# A longer hunt: SCHEMATHESIS_MAX_EXAMPLES=200 SCHEMATHESIS_RANDOM=1 python -m pytest tests/test_api_schemathesis.py
MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "12"))
RANDOM = os.environ.get("SCHEMATHESIS_RANDOM") == "1"

# Fields (in bodies and query strings) that hold the id of an object of this model.
ID_FIELDS = {
    "organisation": Organisation, "site": Site, "parent": Asset, "asset": Asset, "asset_type": AssetType,
    "allowed_parents": AssetType, "device": Device, "device_model": DeviceModel, "devices": Device,
    "bulk_change": BulkChange,
}
PATH_MODELS = {
    f"/api/{prefix}/": viewset.queryset.model
    for prefix, viewset, _basename in [*router.registry, *control_router.registry]
}
# The ids of the objects of the current test, by model; filled by the `operator_token` fixture.
KNOWN_IDS: dict[type, list[int]] = {}


@pytest.fixture
def wsgi_in_test_transaction(db):
    """Django's WSGI handler closes the connection after each request when autocommit is off,
    which it is inside the test's transaction; Django's own test client unhooks this the same way."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def operator_token(wsgi_in_test_transaction):
    world = build_world("fuzz")
    other = build_world("other")  # another organisation's objects, which must stay out of reach
    for each in (world, other):  # a change set and a bulk change each, for the parameter endpoints
        request_changes(each.device, {"ct_ratio": 200})
        start(each.organisation, Device.objects.filter(pk=each.device.pk), {"reporting_interval_s": 30}, {"devices": [each.device.pk]})
    for model in (Organisation, Membership, Site, AssetType, Asset, DeviceModel, Device, Channel, ChangeSet, BulkChange):
        own = list(rows_of(world, model).order_by("pk").values_list("pk", flat=True))
        KNOWN_IDS[model] = own + list(model.objects.exclude(pk__in=own).order_by("pk").values_list("pk", flat=True))
    yield token_client(world.users["operator"])._credentials["HTTP_AUTHORIZATION"]
    KNOWN_IDS.clear()


def known(model, generated):
    """Two generated ids in three become the id of an existing object, chosen by the generated value
    (0, which the coverage phase likes, becomes the operator's own first object)."""
    if not isinstance(generated, int) or isinstance(generated, bool) or generated % 3 == 2 or not KNOWN_IDS.get(model):
        return generated
    ids = KNOWN_IDS[model]
    return ids[generated % len(ids)]


# Loaded at collection: serving the schema touches no database. (schemathesis.pytest.from_fixture
# would load it per test, but its lazy runner breaks on pytest 9.2's node ids.)
schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", application)


@schema.hook
def map_case(context, case):
    if "id" in (case.path_parameters or {}):
        model = next((m for prefix, m in PATH_MODELS.items() if case.operation.path.startswith(prefix)), None)
        case.path_parameters["id"] = known(model, case.path_parameters["id"])
    for container in (case.query, case.body):
        if not isinstance(container, dict):
            continue
        for name, model in ID_FIELDS.items():
            if name in container:
                value = container[name]
                container[name] = [known(model, v) for v in value] if isinstance(value, list) else known(model, value)
    return case


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=not RANDOM,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_server_errors(case, operator_token):
    """One test per operation (method and path)."""
    response = case.call(headers={"Authorization": operator_token})
    case.validate_response(response, checks=[not_a_server_error])

"""CSV import and export of assets (django-import-export), within the user's organisations.

Columns:
  id          empty for a new asset; an existing asset's id to update it
  site        the site's name, among the sites the user may write
  parent      empty for a root; the path of names from the root ("Site / House / Main panel",
              earlier rows of the same file count) or the parent's id
  name        the asset's name
  asset_type  the type's key (building, electrical_panel, ...)
  tags        comma-separated
  attributes  a JSON object, checked against the type's schema (defaults filled in)

Every row is checked in full (the model's own rules: allowed parent, attributes)
and all problems of all rows are reported; the admin imports nothing unless
every row is valid.
"""

import json

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db.models import F, Q
from import_export import fields, resources

from . import tenancy
from .forms import TREE_CYCLE_MESSAGE
from .models import Asset, AssetType, Site

PATH_SEPARATOR = "/"


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


class AssetDiff(resources.Diff):
    """The import preview in the file's own terms (paths, keys, JSON), not Python reprs."""

    def __init__(self, resource, instance, new):
        super().__init__(resource, instance, new)
        self.left = self._values(resource, instance)

    @staticmethod
    def _values(resource, instance):
        if instance is None:
            return ["" for _ in resource.get_import_fields()]
        return [resource.export_field(field, instance) for field in resource.get_import_fields()]

    def compare_with(self, resource, instance):
        self.right = self._values(resource, instance)
        if self.new:  # a dry run's id is rolled back: do not show it
            names = [resource.get_field_name(field) for field in resource.get_import_fields()]
            if "id" in names:
                self.right[names.index("id")] = ""


class AssetResource(resources.ModelResource):
    id = fields.Field(attribute="id", column_name="id")
    site = fields.Field(attribute="site", column_name="site")
    parent = fields.Field(attribute="parent", column_name="parent")
    name = fields.Field(attribute="name", column_name="name")
    asset_type = fields.Field(attribute="asset_type", column_name="asset_type")
    tags = fields.Field(attribute="tags", column_name="tags")
    attributes = fields.Field(attribute="attributes", column_name="attributes")

    class Meta:
        model = Asset
        fields = ["id", "site", "parent", "name", "asset_type", "tags", "attributes"]
        import_order = fields
        export_order = fields
        use_transactions = True
        clean_model_instances = True
        skip_unchanged = True
        report_skipped = True

    def __init__(self, user=None, **kwargs):
        super().__init__(**kwargs)
        self.user = user
        self._names: dict[int, tuple[int | None, str]] = {}

    # --- whose objects ---------------------------------------------------------------------

    def _writable_assets(self):
        return tenancy.writable(Asset.objects.all(), self.user)

    def get_queryset(self):
        return tenancy.visible(Asset.objects.all(), self.user)

    # --- export --------------------------------------------------------------------------

    def before_export(self, queryset, **kwargs):
        # Names and parents of every asset on the exported sites, for the parent paths.
        sites = queryset.order_by().values("site_id")
        self._names = {
            pk: (parent_id, name)
            for pk, parent_id, name in Asset.objects.filter(site_id__in=sites).values_list("pk", "parent_id", "name")
        }

    def _path(self, asset_id: int) -> list[str]:
        names, seen = [], set()
        while asset_id is not None and asset_id not in seen:
            seen.add(asset_id)
            parent_id, name = self._names.get(asset_id) or Asset.objects.values_list("parent_id", "name").get(pk=asset_id)
            names.append(name)
            asset_id = parent_id
        return names[::-1]

    def get_diff_class(self):
        return AssetDiff

    def dehydrate_id(self, asset):
        return asset.pk if asset.pk is not None else ""

    def dehydrate_site(self, asset):
        return asset.site.name if asset.site_id else ""

    def dehydrate_parent(self, asset):
        if asset.parent_id is None:
            return ""
        path = self._path(asset.parent_id)
        if any(PATH_SEPARATOR in name or name != name.strip() or name.isdigit() for name in path):
            return str(asset.parent_id)  # a name the path cannot carry: the id instead
        return f" {PATH_SEPARATOR} ".join(path)

    def dehydrate_asset_type(self, asset):
        return asset.asset_type.key if asset.asset_type_id else ""

    def dehydrate_tags(self, asset):
        return ",".join(asset.tags or [])

    def dehydrate_attributes(self, asset):
        return json.dumps(asset.attributes or {}, ensure_ascii=False, sort_keys=True)

    # --- import --------------------------------------------------------------------------

    def get_instance(self, instance_loader, row):
        raw = _text(row.get("id"))
        if not raw:
            return None
        try:
            pk = int(raw)
            return self._writable_assets().get(pk=pk)
        except (ValueError, Asset.DoesNotExist):
            raise ValidationError({"id": f"No asset with id {raw} that you may change; leave id empty for a new asset."})

    def init_instance(self, row=None):
        return Asset()

    def _site(self, raw: str) -> Site:
        if not raw:
            raise ValidationError("A site is required.")
        sites = list(tenancy.writable(Site.objects.all(), self.user).filter(name=raw)[:2])
        if not sites:
            raise ValidationError(f"No site named “{raw}” in your organisations.")
        if len(sites) > 1:
            raise ValidationError(f"Several of your organisations have a site named “{raw}”.")
        return sites[0]

    def _parent(self, raw: str, site: Site | None) -> Asset | None:
        if not raw:
            return None
        if raw.isdigit():
            try:
                return self._writable_assets().get(pk=int(raw))
            except Asset.DoesNotExist:
                raise ValidationError(f"No asset with id {raw} in your organisations.")
        if site is None:
            raise ValidationError("A parent path needs a valid site.")
        names = [part.strip() for part in raw.split(PATH_SEPARATOR)]
        if not all(names):
            raise ValidationError(f"“{raw}” is not a path of names separated by “{PATH_SEPARATOR}”.")
        parent = None
        for depth, name in enumerate(names):
            matches = list(Asset.objects.filter(site=site, parent=parent, name=name)[:2])
            where = f" {PATH_SEPARATOR} ".join(names[:depth]) or f"the top of {site}"
            if not matches:
                raise ValidationError(f"No asset “{name}” under {where} (unknown parent “{raw}”).")
            if len(matches) > 1:
                raise ValidationError(f"Several assets “{name}” under {where}: give the parent's id instead.")
            parent = matches[0]
        return parent

    def _asset_type(self, raw: str, site: Site | None) -> AssetType:
        """The site's organisation's own type with this key, else the standard one."""
        if not raw:
            raise ValidationError("An asset type key is required.")
        candidates = tenancy.visible(AssetType.objects.all(), self.user).filter(key=raw)
        if site is not None:
            candidates = candidates.filter(Q(organisation=site.organisation_id) | Q(organisation=None))
        found = candidates.order_by(F("organisation").asc(nulls_last=True)).first()
        if found is None:
            raise ValidationError(f"No asset type with key “{raw}”.")
        return found

    def import_instance(self, instance, row, **kwargs):
        """Reads every column of the row, collecting the problems of each."""
        errors = {}

        def read(column, parse):
            try:
                return parse()
            except ValidationError as exc:
                errors[column] = exc.messages
                return None

        site = read("site", lambda: self._site(_text(row.get("site"))))
        if site is not None and instance.pk and site.pk != instance.site_id:
            errors["site"] = ["An asset cannot move to another site."]
            site = None
        parent = read("parent", lambda: self._parent(_text(row.get("parent")), site))
        asset_type = read("asset_type", lambda: self._asset_type(_text(row.get("asset_type")), site))
        if site is not None and asset_type is not None and asset_type.organisation_id not in (None, site.organisation_id):
            errors["asset_type"] = ["This type belongs to another organisation than the site."]
        name = _text(row.get("name"))
        if not name:
            errors["name"] = ["A name is required."]

        def attributes():
            raw = _text(row.get("attributes"))
            if not raw:
                return {}
            try:
                value = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise ValidationError(f"Not valid JSON: {exc.msg} (column {exc.colno}).")
            if not isinstance(value, dict):
                raise ValidationError('Attributes must be a JSON object, e.g. {"rated_power_kw": 2.5}.')
            return value

        attrs = read("attributes", attributes)
        if site is not None:
            instance.site = site
        if asset_type is not None:
            instance.asset_type = asset_type
        instance.parent = parent
        instance.name = name
        instance.tags = [tag.strip() for tag in _text(row.get("tags")).split(",") if tag.strip()]
        instance.attributes = attrs if attrs is not None else {}
        if errors:
            raise ValidationError(errors)

    def validate_instance(self, instance, import_validation_errors=None, validate_unique=True):
        """The model's own checks (allowed parent, cycle, attributes), after the column checks.

        A column that could not be read already has its error: the model's
        complaint that follows from it (say "needs a parent") is left out.
        """
        errors = dict(import_validation_errors or {})
        if instance.site_id is None or instance.asset_type_id is None:
            if errors:
                raise ValidationError(errors)
        try:
            instance.full_clean(exclude=list(errors), validate_unique=validate_unique)
        except ValidationError as exc:
            for field, messages in exc.message_dict.items():
                if field == NON_FIELD_ERRORS and any(TREE_CYCLE_MESSAGE in m for m in messages):
                    field, messages = "parent", ["This would put the asset under itself or one of its descendants."]
                if field in errors:
                    continue
                errors[field] = messages
        if errors:
            raise ValidationError(errors)

"""The operator's admin: each user sees and changes only their organisations' objects.

Every ModelAdmin here goes through `assets.tenancy`: querysets by `visible`,
change and delete by `writable` (organisation and membership management: the
organisation's admins only), foreign-key choices by the objects the user may
write in (plus the shared catalogue rows for asset types and device models).
Another organisation's object answers 404.
"""

from urllib.parse import urlencode

from django.contrib import admin, messages
from django.contrib.admin import RelatedOnlyFieldListFilter, SimpleListFilter
from django.contrib.admin.options import IS_POPUP_VAR
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db.models import CharField, Exists, F, Func, OuterRef, Q, Value
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from import_export.admin import ImportExportMixin
from import_export.formats.base_formats import CSV
from tree_queries.admin import TreeChangeList

from control.device_admin import DeviceParametersAdminMixin, DriftFilter

from . import tenancy
from .energy_admin import AssetEnergyChartMixin, SiteEnergyChartMixin
from .forms import (
    AssetChoiceField,
    AssetTypeForm,
    ChannelForm,
    DeviceForm,
    DeviceModelForm,
    MembershipForm,
    asset_form_for_type,
    attribute_fields,
)
from .models import Asset, AssetType, Channel, Device, DeviceModel, Membership, Organisation, ParameterMapVersion, Site
from .resources import AssetResource

ADMIN_ROLES = {Membership.Role.ADMIN}

admin.site.site_header = "IotWatt administration"
admin.site.site_title = "IotWatt admin"
admin.site.index_title = "Sites, assets and devices"
admin.site.site_url = None  # there is no public site to "view"


def organisation_ids(request, roles=None) -> set[int]:
    """tenancy.organisation_ids, asked once per request and role set."""
    cache = request.__dict__.setdefault("_tenancy_organisation_ids", {})
    key = frozenset(roles) if roles is not None else None
    if key not in cache:
        cache[key] = tenancy.organisation_ids(request.user, roles)
    return cache[key]


class TenantChoicesMixin:
    """Foreign-key and many-to-many choices: only what the user may use."""

    def choice_queryset(self, request, model):
        if model in tenancy.SHARED_CATALOGUES:
            queryset = tenancy.visible(model._default_manager.all(), request.user)
        elif model is Organisation:
            # Where the user may place things (operators too), not who may edit the organisation.
            queryset = tenancy.visible(Organisation.objects.all(), request.user)
            if not request.user.is_superuser:
                queryset = queryset.filter(pk__in=organisation_ids(request, tenancy.WRITER_ROLES))
        elif model in tenancy.ORGANISATION_PATH:
            queryset = tenancy.writable(model._default_manager.all(), request.user)
        else:
            return None
        if self.admin_site.is_registered(model):
            ordering = self.admin_site.get_model_admin(model).get_ordering(request)
            if ordering:
                queryset = queryset.order_by(*ordering)
        return queryset

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        queryset = self.choice_queryset(request, db_field.related_model)
        if queryset is not None:
            kwargs["queryset"] = queryset
        if db_field.related_model is Asset:
            kwargs["form_class"] = AssetChoiceField
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        field = super().formfield_for_dbfield(db_field, request, **kwargs)
        if field is not None and hasattr(field.widget, "can_delete_related"):
            field.widget.can_delete_related = False  # deleting a related object from here is a trap
        return field

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        queryset = self.choice_queryset(request, db_field.related_model)
        if queryset is not None:
            kwargs["queryset"] = queryset
        return super().formfield_for_manytomany(db_field, request, **kwargs)


class TenantAdmin(TenantChoicesMixin, admin.ModelAdmin):
    """A ModelAdmin scoped to the user's organisations."""

    # Who may change and delete: operators and admins (tenancy.WRITER_ROLES), or fewer.
    write_roles = tenancy.WRITER_ROLES

    def get_queryset(self, request):
        return tenancy.visible(super().get_queryset(request), request.user)

    def writable_queryset(self, request, queryset=None):
        queryset = self.model._default_manager.all() if queryset is None else queryset
        if self.write_roles == tenancy.WRITER_ROLES:
            return tenancy.writable(queryset, request.user)
        if request.user.is_superuser:
            return queryset
        path = tenancy.ORGANISATION_PATH[self.model]
        return queryset.filter(**{f"{path}__in": organisation_ids(request, self.write_roles)})

    def can_write(self, request, obj=None) -> bool:
        if request.user.is_superuser:
            return True
        if obj is None:
            return bool(organisation_ids(request, self.write_roles))
        return self.writable_queryset(request, self.model._default_manager.filter(pk=obj.pk)).exists()

    def has_view_permission(self, request, obj=None):
        if not super().has_view_permission(request, obj):
            return False
        return obj is None or request.user.is_superuser or self.get_queryset(request).filter(pk=obj.pk).exists()

    def has_add_permission(self, request):
        return super().has_add_permission(request) and self.can_write(request)

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and self.can_write(request, obj)

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and self.can_write(request, obj)

    def delete_queryset(self, request, queryset):
        pks = list(queryset.values_list("pk", flat=True))
        plain = self.model._default_manager.filter(pk__in=pks)  # not the changelist's (tree) query
        if self.writable_queryset(request, plain).count() != len(pks):
            raise PermissionDenied
        super().delete_queryset(request, plain)

    def _get_obj_does_not_exist_redirect(self, request, opts, object_id):
        # Missing and other organisations' objects look the same: not found.
        raise Http404(f"No {opts.verbose_name} with this id.")


class TenantInline(TenantChoicesMixin, admin.TabularInline):
    """Inline rows are as writable as the object they belong to."""

    def _parent_writable(self, request, obj):
        if obj is None or request.user.is_superuser:
            return True
        parent_admin = self.admin_site.get_model_admin(self.parent_model)
        return parent_admin.can_write(request, obj)

    def has_add_permission(self, request, obj=None):
        return super().has_add_permission(request, obj) and self._parent_writable(request, obj)

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and self._parent_writable(request, obj)

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and self._parent_writable(request, obj)


def catalogue_owner(obj) -> str:
    return obj.organisation.name if obj.organisation_id else "Standard (shared)"


class CatalogueAdmin(TenantAdmin):
    """Asset types and device models: shared rows readable by all, written by superusers only."""

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change, **kwargs)
        if not request.user.is_superuser and "organisation" in form.base_fields:
            # Only superusers define the shared catalogue.
            form.base_fields["organisation"].required = True
            form.base_fields["organisation"].empty_label = None
        return form


# --- organisations, memberships, sites ---------------------------------------------------------

@admin.register(Organisation)
class OrganisationAdmin(TenantAdmin):
    ordering = ["name"]
    list_display = ["name", "slug"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    write_roles = ADMIN_ROLES

    def has_add_permission(self, request):
        # A new organisation has no members yet: only superusers create them.
        return request.user.is_superuser and super().has_add_permission(request)


@admin.register(Membership)
class MembershipAdmin(TenantAdmin):
    ordering = ["organisation__name", "user__username"]
    form = MembershipForm
    list_display = ["user", "organisation", "role"]
    list_filter = [("organisation", RelatedOnlyFieldListFilter), "role"]
    search_fields = ["user__username", "organisation__name"]
    write_roles = ADMIN_ROLES

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "organisation" and not request.user.is_superuser:
            kwargs["queryset"] = Organisation.objects.filter(pk__in=organisation_ids(request, ADMIN_ROLES))
            return admin.ModelAdmin.formfield_for_foreignkey(self, db_field, request, **kwargs)
        if db_field.name == "user" and not request.user.is_superuser:
            # Colleagues only: never every account of the installation.
            kwargs["queryset"] = get_user_model().objects.filter(
                memberships__organisation__in=organisation_ids(request)
            ).distinct()
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


@admin.register(Site)
class SiteAdmin(SiteEnergyChartMixin, TenantAdmin):
    ordering = ["organisation__name", "name"]
    list_display = ["name", "organisation", "timezone"]
    list_filter = [("organisation", RelatedOnlyFieldListFilter)]
    search_fields = ["name"]


# --- asset types and the asset tree ------------------------------------------------------------

@admin.register(AssetType)
class AssetTypeAdmin(CatalogueAdmin):
    form = AssetTypeForm
    list_display = ["name", "key", "owner", "can_be_root", "parents"]
    list_filter = ["can_be_root", ("organisation", RelatedOnlyFieldListFilter)]
    search_fields = ["name", "key", "description"]
    filter_horizontal = ["allowed_parents"]
    readonly_fields = ["attribute_fields_preview"]
    fieldsets = [
        (None, {"fields": ["key", "name", "organisation", "description"]}),
        ("Place in the tree", {"fields": ["can_be_root", "allowed_parents"]}),
        ("Attributes", {"fields": ["attribute_schema", "attribute_fields_preview"]}),
    ]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("organisation").prefetch_related("allowed_parents")

    @admin.display(description="owner", ordering="organisation__name")
    def owner(self, obj):
        return catalogue_owner(obj)

    @admin.display(description="may sit under")
    def parents(self, obj):
        return ", ".join(sorted(p.name for p in obj.allowed_parents.all())) or "—"

    @admin.display(description="form fields")
    def attribute_fields_preview(self, obj):
        if obj is None or not obj.pk:
            return "Shown once the type is saved."
        rows = []
        for _, (attribute, field) in attribute_fields(obj.attribute_schema).items():
            kind = type(field).__name__.replace("Field", "").replace("Typed", "")
            extra = []
            if getattr(field, "min_value", None) is not None:
                extra.append(f"≥ {field.min_value}")
            if getattr(field, "max_value", None) is not None:
                extra.append(f"≤ {field.max_value}")
            if field.initial is not None:
                extra.append(f"default {field.initial}")
            if field.required:
                extra.append("required")
            rows.append((field.label, attribute, kind, ", ".join(extra)))
        if not rows:
            return "No attributes."
        return format_html(
            "<table><tr><th>label</th><th>attribute</th><th>field</th><th>rules</th></tr>{}</table>",
            format_html_join("", "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td></tr>", rows),
        )


class TagFilter(SimpleListFilter):
    """For a model with `tags` (assets, devices): the tags of the user's own objects."""

    title = "tag"
    parameter_name = "tag"

    def lookups(self, request, model_admin):
        tags = set()
        for row in tenancy.visible(model_admin.model.objects.all(), request.user).values_list("tags", flat=True):
            tags.update(row or [])
        return [(tag, tag) for tag in sorted(tags)]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(tags__contains=[self.value()])
        return queryset


@admin.register(Asset)
class AssetAdmin(AssetEnergyChartMixin, ImportExportMixin, TenantAdmin):
    """The asset tree, depth first and indented; attributes edited as fields of the type."""

    resource_classes = [AssetResource]
    import_template_name = "admin/assets/asset/import.html"  # row errors spelled out, not behind a hover
    import_formats = [CSV]
    export_formats = [CSV]
    list_display = ["tree_name", "asset_type", "site", "tag_list", "add_child"]
    list_display_links = ["tree_name"]
    list_filter = [("site", RelatedOnlyFieldListFilter), ("asset_type", RelatedOnlyFieldListFilter), TagFilter]
    search_fields = ["name", "tags_text"]
    search_help_text = "Name or tag"
    list_per_page = 200

    # --- the tree changelist

    def get_queryset(self, request):
        # Whether any type may sit under the asset's type, for the "+ child" link.
        child_types = AssetType.allowed_parents.through.objects.filter(to_assettype_id=OuterRef("asset_type_id"))
        return (
            super().get_queryset(request)
            .with_tree_fields()
            .order_siblings_by("name")
            .select_related("site", "asset_type")
            .annotate(may_have_children=Exists(child_types))
            .order_by("tree_ordering")
        )

    def get_changelist(self, request, **kwargs):
        return TreeChangeList  # depth first unless a column is clicked

    def get_search_results(self, request, queryset, search_term):
        tags_text = Func(F("tags"), Value(" "), function="array_to_string", output_field=CharField())
        return super().get_search_results(request, queryset.annotate(tags_text=tags_text), search_term)

    @admin.display(description="asset")
    def tree_name(self, obj):
        depth = getattr(obj, "tree_depth", 0)
        return format_html(
            '<span style="padding-left:{}em">{}{}</span>', 1.6 * max(depth - 1, 0), "└─ " if depth else "", obj.name
        )

    @admin.display(description="tags")
    def tag_list(self, obj):
        return ", ".join(obj.tags) if obj.tags else ""

    @admin.display(description="")
    def add_child(self, obj):
        if not getattr(obj, "may_have_children", True):
            return mark_safe("&nbsp;")  # no type may sit under this one
        url = reverse("admin:assets_asset_add") + "?" + urlencode({"site": obj.site_id, "parent": obj.pk})
        return format_html('<a href="{}" title="Add an asset under {}">+ child</a>', url, obj.name)

    def get_list_display(self, request):
        columns = list(super().get_list_display(request))
        if not self.has_add_permission(request):
            columns.remove("add_child")
        return columns

    # --- the change form: type first, then one field per attribute

    def _form_asset_type(self, request, obj):
        cache = request.__dict__.setdefault("_asset_form_type", {})
        key = obj.pk if obj is not None else None
        if key in cache:
            return cache[key]
        raw = request.POST.get("asset_type") if request.method == "POST" else (request.GET.get("asset_type") if obj is None else None)
        asset_type = None
        if raw:
            try:
                asset_type = tenancy.visible(AssetType.objects.all(), request.user).get(pk=int(raw))
            except (ValueError, AssetType.DoesNotExist):
                asset_type = None
        if asset_type is None and obj is not None:
            asset_type = obj.asset_type
        cache[key] = asset_type
        return asset_type

    def get_form(self, request, obj=None, change=False, **kwargs):
        kwargs["form"] = asset_form_for_type(self._form_asset_type(request, obj))
        form = super().get_form(request, obj, change, **kwargs)
        if obj is not None:
            if "parent" in form.base_fields:  # an asset moves within its own site
                form.base_fields["parent"].queryset = form.base_fields["parent"].queryset.filter(site_id=obj.site_id)
            if "asset_type" in form.base_fields:
                form.base_fields["asset_type"].help_text = "Another type shows its attribute fields first; save again to apply."
        return form

    def get_readonly_fields(self, request, obj=None):
        fields = ["attributes_display", "channel_list"]
        if obj is not None:
            fields.append("site")  # an asset moves within its site; its subtree and channels stay with it
        return fields

    def get_fieldsets(self, request, obj=None):
        read_only = obj is not None and not self.has_change_permission(request, obj)
        asset_type = self._form_asset_type(request, obj)
        main = ["site", "parent", "asset_type", "name", "tags"]
        if not read_only:
            main.append("attributes_type")
        fieldsets = [(None, {"fields": main})]
        if read_only:
            fieldsets.append(("Attributes", {"fields": ["attributes_display"]}))
        elif asset_type is not None:
            names = list(attribute_fields(asset_type.attribute_schema))
            if names:
                fieldsets.append((f"Attributes ({asset_type})", {"fields": names}))
        if obj is not None:
            fieldsets.append(("Channels", {"fields": ["channel_list"]}))
        return fieldsets

    @admin.display(description="attributes")
    def attributes_display(self, obj):
        if obj is None or not obj.attributes:
            return "—"
        labels = {attribute: field.label for attribute, field in attribute_fields(obj.asset_type.attribute_schema).values()}
        rows = [(labels.get(key, key), value) for key, value in obj.attributes.items()]
        return format_html("<table>{}</table>", format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", rows))

    @admin.display(description="channels")
    def channel_list(self, obj):
        if obj is None or not obj.pk:
            return "—"
        # Only the asset's own organisation's channels, whatever a stray row may point at.
        channels = Channel.objects.filter(asset=obj, device__site__organisation=obj.site.organisation_id).select_related("device")
        rows = [
            (reverse("admin:assets_channel_change", args=[c.pk]), c, c.device, c.get_role_display(), c.get_metric_display())
            for c in channels
        ]
        if not rows:
            return "No channel measures this asset."
        return format_html_join(
            "", '<div><a href="{}">{}</a> — {} · {} · {}</div>', rows
        )

    def add_view(self, request, form_url="", extra_context=None):
        if request.method == "GET" and not request.GET.get("asset_type"):
            return self.choose_type_view(request)
        return super().add_view(request, form_url, extra_context)

    def choose_type_view(self, request):
        """Step one of adding an asset: its type (which decides where it may sit and its attributes)."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        types = tenancy.visible(AssetType.objects.all(), request.user).select_related("organisation")
        parent = None
        if request.GET.get("parent", "").isdigit():
            parent = tenancy.writable(Asset.objects.all(), request.user).filter(pk=request.GET["parent"]).select_related("asset_type", "site").first()
        if parent is not None:
            types = types.filter(allowed_parents=parent.asset_type).filter(
                Q(organisation__isnull=True) | Q(organisation=parent.site.organisation_id)
            )
        params = {k: v for k, v in request.GET.items() if k != "asset_type"}
        choices = [
            {
                "type": t,
                "url": "?" + urlencode({**params, "asset_type": t.pk}),
                "owner": catalogue_owner(t),
                "attributes": [field.label for _, field in attribute_fields(t.attribute_schema).values()],
            }
            for t in types.order_by("name")
        ]
        context = {
            **self.admin_site.each_context(request),
            "title": f"Add an asset under {parent}: choose its type" if parent else "Add an asset: choose its type",
            "subtitle": None,
            "opts": self.opts,
            "parent": parent,
            "choices": choices,
            "is_popup": IS_POPUP_VAR in request.GET,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/assets/asset/choose_type.html", context)

    # --- CSV import and export

    def get_resource_kwargs(self, request, *args, **kwargs):
        return {"user": request.user}

    def has_import_permission(self, request):
        return self.has_add_permission(request) and self.has_change_permission(request)

    def has_export_permission(self, request):
        return self.has_view_permission(request)

    def get_import_data_kwargs(self, **kwargs):
        kwargs = super().get_import_data_kwargs(**kwargs)
        kwargs["use_transactions"] = True
        kwargs["rollback_on_validation_errors"] = True  # all rows or none, also on the confirm step
        return kwargs

    def process_result(self, result, request):
        if result.has_errors() or result.has_validation_errors():
            # Something changed between the dry run and the confirmation: nothing was imported.
            self.message_user(request, "The file no longer imports cleanly; nothing was imported. Try the import again.", messages.ERROR)
            return HttpResponseRedirect(reverse("admin:assets_asset_import"))
        return super().process_result(result, request)


# --- devices and channels ----------------------------------------------------------------------

class ParameterMapVersionInline(admin.TabularInline):
    """Every map the model has had, newest first: what decoded its devices' payloads when."""

    model = ParameterMapVersion
    extra = 0
    can_delete = False
    fields = ["version", "saved_at", "saved_by", "parameter_map"]
    readonly_fields = fields
    verbose_name = "parameter map version"

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(DeviceModel)
class DeviceModelAdmin(CatalogueAdmin):
    ordering = ["name"]
    form = DeviceModelForm
    list_display = ["name", "key", "manufacturer", "owner", "map_version"]
    list_filter = [("organisation", RelatedOnlyFieldListFilter)]
    search_fields = ["name", "key", "manufacturer"]
    inlines = [ParameterMapVersionInline]

    def get_queryset(self, request):
        return DeviceModel.with_map_version(super().get_queryset(request))

    def save_model(self, request, obj, form, change):
        obj._changed_by = request.user  # recorded with the map version the save makes
        super().save_model(request, obj, form, change)

    @admin.display(description="owner", ordering="organisation__name")
    def owner(self, obj):
        return catalogue_owner(obj)


class ChannelInline(TenantInline):
    model = Channel
    form = ChannelForm
    extra = 0
    fields = ["key", "metric", "role", "asset", "name", "last_reading"]
    readonly_fields = ["last_reading"]

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        field = super().formfield_for_dbfield(db_field, request, **kwargs)
        if db_field.name == "asset" and hasattr(field.widget, "widget"):
            field.widget = field.widget.widget  # a plain select: the row stays narrow
        return field

    def get_formset(self, request, obj=None, **kwargs):
        formset = super().get_formset(request, obj, **kwargs)
        if obj is not None and "asset" in formset.form.base_fields:
            field = formset.form.base_fields["asset"]
            field.queryset = field.queryset.filter(site_id=obj.site_id)
        return formset

    @admin.display(description="last reading")
    def last_reading(self, channel):
        reading = channel.readings.order_by("-time").first() if channel.pk else None
        if reading is None:
            return "—"
        return f"{reading.value:,.1f} {channel.unit} at {reading.time:%Y-%m-%d %H:%M %Z}"


@admin.register(Device)
class DeviceAdmin(DeviceParametersAdminMixin, TenantAdmin):
    ordering = ["identifier"]
    form = DeviceForm
    list_display = ["identifier", "name", "site", "device_model", "online", "status_changed_at", "last_seen_at", "parameter_sync"]
    list_filter = [("site", RelatedOnlyFieldListFilter), ("device_model", RelatedOnlyFieldListFilter), TagFilter, DriftFilter, "online"]
    search_fields = ["identifier", "name"]
    readonly_fields = ["online", "status_changed_at", "last_seen_at", "parameter_table"]
    inlines = [ChannelInline]

    def get_fieldsets(self, request, obj=None):
        fieldsets = [
            (None, {"fields": ["identifier", "name", "site", "device_model", "tags"]}),
            ("Status", {"fields": ["online", "status_changed_at", "last_seen_at"]}),
        ]
        if obj is not None:
            fieldsets.append(("Parameters", {"fields": ["parameter_table"]}))
        return fieldsets


@admin.register(Channel)
class ChannelAdmin(TenantAdmin):
    ordering = ["device__identifier", "key", "metric"]
    form = ChannelForm
    list_display = ["__str__", "device", "key", "metric", "role", "asset"]
    list_filter = ["metric", "role", ("device__site", RelatedOnlyFieldListFilter)]
    search_fields = ["key", "name", "device__identifier"]
    list_select_related = ["device", "asset"]
    readonly_fields = ["reading_flags"]

    RECENT_FLAGS = 20

    @admin.display(description="what the energy rules noticed (newest first)")
    def reading_flags(self, channel):
        """Resets, rollovers, glitches, spikes and the like in the channel's readings: why its energy is what it is."""
        flags = list(channel.reading_flags.order_by("-time")[: self.RECENT_FLAGS]) if channel.pk else []
        if not flags:
            return "—"
        return format_html_join(
            mark_safe("<br>"), "{} <strong>{}</strong> {}",
            ((f"{flag.time:%Y-%m-%d %H:%M:%S %Z}", flag.get_kind_display(), flag.detail) for flag in flags),
        )

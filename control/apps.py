from django.apps import AppConfig


class ControlConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "control"
    verbose_name = "Control"

    def ready(self):
        # The admin and the API scope every model through assets.tenancy, which cannot import these
        # models itself (they are built on the assets app's).
        from assets.tenancy import ORGANISATION_PATH

        from .models import BulkChange, ChangeSet, DeviceConfiguration, DeviceParameter, ParameterEvent

        ORGANISATION_PATH.update({
            BulkChange: "organisation",
            ChangeSet: "device__site__organisation",
            DeviceConfiguration: "device__site__organisation",
            DeviceParameter: "device__site__organisation",
            ParameterEvent: "device__site__organisation",
        })

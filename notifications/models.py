"""Alert events: something an operator should know about, raised by any part of the product.

Delivery (Telegram) and the rules that raise alerts from readings build on these rows.
"""

from django.db import models

from assets.models import Device, Organisation, Site


class AlertEvent(models.Model):
    class Kind(models.TextChoices):
        PARAMETER_DRIFT = "parameter_drift", "device parameter drift"
        PARAMETER_REJECTED = "parameter_rejected", "device refused a parameter"
        PARAMETER_TIMED_OUT = "parameter_timed_out", "device did not answer a parameter change"

    class Severity(models.TextChoices):
        INFO = "info", "info"
        WARNING = "warning", "warning"
        CRITICAL = "critical", "critical"

    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="alert_events")
    site = models.ForeignKey(Site, null=True, blank=True, on_delete=models.CASCADE, related_name="alert_events")
    device = models.ForeignKey(Device, null=True, blank=True, on_delete=models.CASCADE, related_name="alert_events")
    kind = models.CharField(max_length=32, choices=Kind.choices)
    severity = models.CharField(max_length=16, choices=Severity.choices, default=Severity.WARNING)
    message = models.TextField()
    details = models.JSONField(default=dict, blank=True)
    raised_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-raised_at", "-id"]

    def __str__(self):
        return self.message


def raise_alert(device: Device, kind: str, message: str, severity: str = AlertEvent.Severity.WARNING, **details) -> AlertEvent:
    return AlertEvent.objects.create(
        organisation_id=device.site.organisation_id, site_id=device.site_id, device=device,
        kind=kind, severity=severity, message=message, details=details,
    )

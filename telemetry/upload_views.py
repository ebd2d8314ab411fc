"""HTTP endpoints for devices that upload instead of publishing over MQTT (IoTaWatt's InfluxDB uploader)."""

from datetime import datetime, timezone

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.authentication import BasicAuthentication, TokenAuthentication
from rest_framework.parsers import BaseParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from assets.models import Device
from assets.tenancy import writable

from .influx_upload import PRECISIONS, TOPIC_PREFIX, UNREADABLE_LINE_TOPIC, messages_from_lines
from .ingest import dead_letter_alone, device_claiming, devices_named_in
from .tasks import ingest_batch


class LineProtocolParser(BaseParser):
    """The body is read as it came (request.body); this only lets DRF accept the content type."""

    media_type = "text/plain"

    def parse(self, stream, media_type=None, parser_context=None):
        return None


class InfluxWrite(APIView):
    """InfluxDB line protocol from IoTaWatt: v1 `/write` (basic auth or token) and v2 `/api/v2/write`
    (`Authorization: Token <key>`, an IotWatt API token). Answers 204 once every line is stored or
    kept as a dead letter, so IoTaWatt moves on; 403 (nothing stored) when a named device is not registered
    or not the caller's to write: IoTaWatt keeps its data and sends it again once it is."""

    authentication_classes = [TokenAuthentication, BasicAuthentication]
    permission_classes = [IsAuthenticated]
    parser_classes = [LineProtocolParser]

    @extend_schema(
        request={"text/plain": str},
        responses={
            204: OpenApiResponse(description="Stored (readings, or dead letters for lines that cannot be read)"),
            400: OpenApiResponse(description="Not UTF-8 text, or an unknown precision"),
            403: OpenApiResponse(description="A device the lines name belongs to an organisation the caller may not write"),
        },
    )
    def post(self, request, *args, **kwargs):
        precision = request.query_params.get("precision", "ns")  # InfluxDB's default
        if precision not in PRECISIONS:
            return Response({"error": f"precision must be one of {sorted(PRECISIONS)}"}, status=status.HTTP_400_BAD_REQUEST)
        try:
            body = request.body.decode("utf-8")
        except UnicodeDecodeError:
            return Response({"error": "the body is not UTF-8 text"}, status=status.HTTP_400_BAD_REQUEST)
        received_at = datetime.now(timezone.utc)
        upload = messages_from_lines(body, precision, received_at)
        # Judged on the device each message will reach, as ingest will find it: a device another
        # organisation registers later, or one of another model claiming the topic, is never written.
        topics = {message["topic"] for message in upload.messages}
        devices = devices_named_in(topics)
        receivers = {topic: device_claiming(topic, devices) for topic in topics}
        allowed = set(writable(Device.objects.filter(pk__in=[d.pk for d in receivers.values() if d]), request.user).values_list("pk", flat=True))
        refused = sorted(topic.removeprefix(TOPIC_PREFIX) for topic, device in receivers.items() if device is None or device.pk not in allowed)
        if refused:
            return Response(
                {"error": f"no registered IoTaWatt device you may write is named {refused[:10]}: register it first "
                          "(IoTaWatt keeps its data and sends it again)"},
                status=status.HTTP_403_FORBIDDEN,
            )
        if upload.messages:
            ingest_batch(upload.messages)  # in this request: the answer says it is stored
        for line, reason in upload.bad_lines:
            dead_letter_alone({"topic": UNREADABLE_LINE_TOPIC, "payload": line, "received_at": received_at.isoformat()},
                              f"InfluxDB line: {reason}")
        return Response(status=status.HTTP_204_NO_CONTENT)

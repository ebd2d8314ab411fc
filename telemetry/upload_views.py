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

from .influx_upload import PRECISIONS, TOPIC_PREFIX, messages_from_lines
from .ingest import dead_letter_alone
from .tasks import ingest_batch


class LineProtocolParser(BaseParser):
    """The body is read as it came (request.body); this only lets DRF accept the content type."""

    media_type = "text/plain"

    def parse(self, stream, media_type=None, parser_context=None):
        return None


class InfluxWrite(APIView):
    """InfluxDB line protocol from IoTaWatt: v1 `/write` (basic auth or token) and v2 `/api/v2/write`
    (`Authorization: Token <key>`, an IotWatt API token). Answers 204 once every line is stored or
    kept as a dead letter, so IoTaWatt moves on; 403 when a named device is not the caller's to write."""

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
        named = Device.objects.filter(identifier__in=upload.devices)
        refused = sorted(set(named.values_list("identifier", flat=True)) - set(writable(named, request.user).values_list("identifier", flat=True)))
        if refused:
            return Response({"error": f"not allowed to write to device(s) {refused[:10]}"}, status=status.HTTP_403_FORBIDDEN)
        if upload.messages:
            ingest_batch(upload.messages)  # in this request: the answer says it is stored
        for line, reason in upload.bad_lines:
            dead_letter_alone({"topic": TOPIC_PREFIX.rstrip("/"), "payload": line, "received_at": received_at.isoformat()},
                              f"InfluxDB line: {reason}")
        return Response(status=status.HTTP_204_NO_CONTENT)

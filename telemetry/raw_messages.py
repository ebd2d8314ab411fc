"""The raw form of an MQTT message as the bridge hands it over, and how it is kept to be ingested again.

The bridge sends {"topic", "payload" (the payload as UTF-8 text) or "payload_b64" (any other
bytes), "received_at" (ISO 8601)}. Dead letters and pending devices' messages keep exactly
that, so a replay gives ingest the message it first received. PostgreSQL text cannot hold NUL,
so text with NUL is kept as base64 of its UTF-8 bytes (flagged) rather than altered.
"""

import base64
from dataclasses import dataclass
from datetime import datetime


def message_payload(message: dict) -> str | bytes:
    if "payload_b64" in message:
        return base64.b64decode(message["payload_b64"])
    return message["payload"]


def payload_bytes(message: dict) -> bytes:
    payload = message_payload(message)
    return payload if isinstance(payload, bytes) else payload.encode("utf-8", "surrogatepass")


def payload_size(message: dict) -> int:
    """Bytes on the wire. Counted without encoding when that is exact: ASCII text (the usual JSON) is one byte a character.
    A payload the bridge cut to the size limit carries its real size."""
    if "payload_bytes" in message:
        return message["payload_bytes"]
    payload = message.get("payload")
    if isinstance(payload, str) and payload.isascii():
        return len(payload)
    return len(payload_bytes(message))


@dataclass(frozen=True)
class StoredPayload:
    text: str
    is_base64: bool
    truncated: bool


def stored_payload(message: dict, keep_bytes: int | None = None) -> StoredPayload:
    """The payload as a database text; with `keep_bytes`, only its first `keep_bytes` bytes."""
    payload = message.get("payload")
    if isinstance(payload, str) and "\x00" not in payload and (keep_bytes is None or payload_size(message) <= keep_bytes):
        return StoredPayload(payload, is_base64=False, truncated=False)
    raw = payload_bytes(message)
    kept = raw if keep_bytes is None else raw[:keep_bytes]
    truncated = len(kept) < payload_size(message)  # the bridge may have cut it already
    if isinstance(payload, str) and "\x00" not in payload:
        # Cut text stays text; a character split by the cut is dropped rather than garbled.
        return StoredPayload(kept.decode("utf-8", "ignore"), is_base64=False, truncated=truncated)
    return StoredPayload(base64.b64encode(kept).decode("ascii"), is_base64=True, truncated=truncated)


def message_from_stored(topic: str, payload: str, is_base64: bool, received_at: datetime) -> dict:
    """The bridge's form of a kept message, for ingest_messages."""
    message = {"topic": topic, "received_at": received_at.isoformat()}
    message["payload_b64" if is_base64 else "payload"] = payload
    return message

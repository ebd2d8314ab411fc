"""Ingest kept messages again once an operator has fixed why they were not stored.

Dead letters: after a fix (a channel added, a parameter map corrected, a device registered),
`replay_dead_letters` feeds each letter's raw message through the normal ingest. A letter
whose message now stores fully is deleted; one that fails again keeps its row, with the new
reason. Ingest writes a new dead letter for whatever still fails; replay folds that new row
into the old one, so a replay never leaves two letters for one message. It recognises the
new row as created after the replay started, for the same topic and arrival time: only the
same message (a batch the bridge sent again) has both.

Pending devices' messages: `replay_claimed_messages` ingests those some registered device
now claims (after adoption, or a device registered by hand) and removes them from the store.
Readings are keyed by (channel, time), so a message ingested twice is stored once.
"""

from dataclasses import dataclass, field

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from .influx_upload import UNREADABLE_LINE_TOPIC
from .ingest import device_claiming, devices_named_in, ingest_messages
from .models import DeadLetter, PendingDevice, UnclaimedMessage
from .raw_messages import message_from_stored

# Messages per ingest call: the bridge's default batch size.
REPLAY_CHUNK = 500


@dataclass
class DeadLetterReplay:
    stored: int = 0  # stored fully now: letter deleted
    failed_again: int = 0  # letter kept with the new reason
    moved_to_pending: int = 0  # no device claims the topic any more: kept as a pending device's message
    not_replayable: int = 0  # truncated: the message is not whole
    readings: int = 0

    def summary(self) -> str:
        # `readings` counts the readings the messages hold, those stored before included (they are not stored twice).
        return (f"{self.stored} stored and removed ({self.readings} readings in them), {self.failed_again} failed again "
                f"(reason updated), {self.moved_to_pending} moved to pending devices, "
                f"{self.not_replayable} not replayable (payload truncated)")


def replay_dead_letters(letters) -> DeadLetterReplay:
    """Replay the dead letters of `letters` (a queryset), each in its own transaction."""
    outcome = DeadLetterReplay()
    for pk in list(letters.order_by("received_at", "pk").values_list("pk", flat=True)):
        with transaction.atomic():
            # skip_locked: a letter another operator is replaying right now is theirs.
            letter = DeadLetter.objects.select_for_update(skip_locked=True).filter(pk=pk).first()
            if letter is None:
                continue
            # A cut payload is not the message; an InfluxDB line that could not be read names no device.
            if letter.payload_truncated or letter.topic == UNREADABLE_LINE_TOPIC:
                outcome.not_replayable += 1
                continue
            _replay_one(letter, outcome)
    return outcome


def _replay_one(letter: DeadLetter, outcome: DeadLetterReplay) -> None:
    before = DeadLetter.objects.aggregate(last=Max("pk"))["last"] or 0
    # Out of the way while its message is ingested again: ingest leaves out a letter it holds already,
    # and the new letter is what tells whether the message fails again. Restored below if it does.
    DeadLetter.objects.filter(pk=letter.pk).delete()
    result = ingest_messages([message_from_stored(letter.topic, letter.payload, letter.payload_is_base64, letter.received_at)])
    outcome.readings += result.readings
    new = list(DeadLetter.objects.filter(pk__gt=before, topic=letter.topic, received_at=letter.received_at).order_by("pk"))
    kept_pending = result.pending and UnclaimedMessage.objects.filter(topic=letter.topic, received_at=letter.received_at).exists()
    if not new and not result.dead_letters and (kept_pending or not result.pending):
        if result.pending:
            outcome.moved_to_pending += 1
        else:
            outcome.stored += 1
        return
    if result.pending and not kept_pending:
        new_reason = "no registered device claims this topic, and the pending-device store is full"
    else:
        # Failed again; with no new letter, a twin of this letter (same message) holds the reason.
        new_reason = new[-1].reason if new else letter.reason
    letter.reason = new_reason
    letter.replay_count += 1
    letter.replayed_at = timezone.now()
    DeadLetter.objects.filter(pk__in=[n.pk for n in new]).delete()
    first_kept = letter.created_at
    letter.save(force_insert=True)  # the same letter, its id kept, with the new reason
    DeadLetter.objects.filter(pk=letter.pk).update(created_at=first_kept)  # not the time of this replay
    outcome.failed_again += 1


@dataclass
class UnclaimedReplay:
    messages: int = 0
    readings: int = 0
    dead_letters: int = 0
    left_pending: int = 0  # messages no registered device claims yet
    pending_devices_removed: list[str] = field(default_factory=list)


def replay_claimed_messages(pending_device_ids) -> UnclaimedReplay:
    """Ingest the messages of these pending devices that a registered device claims now, and remove them.

    Runs in the caller's transaction if there is one (adoption), else in its own. The pending
    devices' rows are locked first: a batch adding messages to them waits, and its messages land
    in the store afterwards (a new pending device row if this one was removed), never lost.
    """
    outcome = UnclaimedReplay()
    with transaction.atomic():
        pending = list(PendingDevice.objects.select_for_update().filter(pk__in=list(pending_device_ids)).order_by("key"))
        for pending_device in pending:
            ids = list(pending_device.messages.order_by("received_at", "pk").values_list("pk", flat=True))
            for start in range(0, len(ids), REPLAY_CHUNK):
                chunk = list(UnclaimedMessage.objects.filter(pk__in=ids[start:start + REPLAY_CHUNK]).order_by("received_at", "pk"))
                devices = devices_named_in(m.topic for m in chunk)
                claimed = [m for m in chunk if device_claiming(m.topic, devices) is not None]
                outcome.left_pending += len(chunk) - len(claimed)
                if not claimed:
                    continue
                result = ingest_messages([message_from_stored(m.topic, m.payload, m.payload_is_base64, m.received_at) for m in claimed])
                outcome.messages += len(claimed)
                outcome.readings += result.readings
                outcome.dead_letters += result.dead_letters
                UnclaimedMessage.objects.filter(pk__in=[m.pk for m in claimed]).delete()
            # Removed once nothing is left and its device is registered; otherwise it still says what arrives.
            if (not pending_device.is_overflow and not pending_device.messages.exists()
                    and device_claiming(pending_device.last_topic, devices_named_in([pending_device.last_topic])) is not None):
                outcome.pending_devices_removed.append(str(pending_device))
                pending_device.delete()
    return outcome

"""Reading what an SDK writes during an attempt: journal entries, run proposals, the ending.

Also the one thing the partition needs resolved about those entries before it applies them: the
settings of every handler they call or send to (``targets``), so apply never reads the registry.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from engine.partition.commands import AttemptEnding, InvocationSettings
from engine.partition.types import JournalEntry
from engine.protocol import service_protocol_pb2 as pb
from engine.protocol.codec import REQUESTED_ACK, FrameDecoder, MessageType, ProtocolError
from engine.records import Failure


class Interrupted(StrEnum):
    """Attempts that end without an outcome for the partition."""

    STALE = "stale"  # the partition moved on (paused, cancelled, a newer attempt): drop it
    REFUSED = "refused"  # the deployment refused the stream before reading it: try again at once


@dataclass
class AttemptResult:
    entries: list[JournalEntry]
    ending: AttemptEnding | Interrupted
    awaiting_completions: list[int] = field(default_factory=list)
    awaiting_signals: list[int] = field(default_factory=list)
    awaiting_signal_names: list[str] = field(default_factory=list)
    failure: str | None = None
    retry_after: float | None = None
    error: Failure | None = None  # the SDK's ErrorMessage, what a kill after the last retry reports


class MessageReader:
    """Turns the SDK's byte stream into journal entries and, at the end, how the attempt ended."""

    def __init__(self) -> None:
        self._decoder = FrameDecoder()
        self.entries: list[JournalEntry] = []
        # Run proposals to answer in bidi mode: (completion id, ack requested, notification payload).
        self.run_proposals: list[tuple[int, bool, bytes]] = []

    def feed(self, data: bytes) -> AttemptResult | None:
        """Consume ``data``; returns the attempt's result once an End, Suspension or Error arrived."""
        try:
            frames = self._decoder.feed(data)
        except ProtocolError as exc:
            return AttemptResult(self.take_entries(), AttemptEnding.ERROR, failure=f"protocol violation: {exc}")
        for frame in frames:
            kind = frame.type
            if kind == MessageType.PROPOSE_RUN_COMPLETION:
                # A run proposal is journaled as the notification the SDK will replay.
                proposal = pb.ProposeRunCompletionMessage.FromString(frame.payload)
                notification = pb.RunCompletionNotificationMessage(completion_id=proposal.result_completion_id)
                if proposal.HasField("failure"):
                    notification.failure.CopyFrom(proposal.failure)
                else:
                    notification.value.content = proposal.value
                payload = notification.SerializeToString()
                self.entries.append((MessageType.RUN_COMPLETION, payload))
                wants_ack = bool(frame.flags & REQUESTED_ACK)
                self.run_proposals.append((proposal.result_completion_id, wants_ack, payload))
            elif kind >= 0x0400:
                self.entries.append((kind, frame.payload))
            elif kind == MessageType.END:
                return AttemptResult(self.take_entries(), AttemptEnding.END)
            elif kind == MessageType.SUSPENSION:
                suspension = pb.SuspensionMessage.FromString(frame.payload)
                completions, signals, names = _flatten_awaited(suspension)
                return AttemptResult(self.take_entries(), AttemptEnding.SUSPEND, completions, signals, names)
            elif kind == MessageType.ERROR:
                error = pb.ErrorMessage.FromString(frame.payload)
                delay = error.next_retry_delay / 1000 if error.HasField("next_retry_delay") else None
                return AttemptResult(
                    self.take_entries(),
                    AttemptEnding.ERROR,
                    failure=f"[{error.code}] {error.message}",
                    retry_after=delay,
                    error=Failure(error.code, error.message),
                )
            # AwaitingOn and other hints need no answer.
        return None

    def take_entries(self) -> list[JournalEntry]:
        entries, self.entries = self.entries, []
        return entries


def read_messages(data: bytes) -> AttemptResult:
    """A whole request/response body: it must end with End, Suspension or Error."""
    reader = MessageReader()
    result = reader.feed(data)
    if result is not None:
        return result
    return AttemptResult(reader.take_entries(), AttemptEnding.INCOMPLETE, failure=NO_ENDING)


NO_ENDING = "the SDK closed the stream without End, Suspension or Error"


def _flatten_awaited(message: pb.SuspensionMessage) -> tuple[list[int], list[int], list[str]]:
    """Every notification the suspension names; any one of them may unblock the SDK."""
    completions = list(message.waiting_completions)
    signals = list(message.waiting_signals)
    names = list(message.waiting_named_signals)
    pending = [message.awaiting_on] if message.HasField("awaiting_on") else []
    while pending:
        future = pending.pop()
        completions.extend(future.waiting_completions)
        signals.extend(future.waiting_signals)
        names.extend(future.waiting_named_signals)
        pending.extend(future.nested_futures)
    return completions, signals, names


def refused_answer(
    status: int, headers: Mapping[str, str], media_type: str, where: str, body: bytes = b""
) -> AttemptResult | None:
    """The failed attempt an answer that is not the service protocol's makes; None when it is."""
    if status != 200:
        retry_after = headers.get("retry-after")
        detail = f": {body[:200]!r}" if body else ""
        return AttemptResult(
            [],
            AttemptEnding.ERROR,
            failure=f"unexpected status {status} from {where}{detail}",
            retry_after=float(retry_after) if retry_after and retry_after.isdigit() else None,
        )
    if headers.get("content-type") != media_type:
        return AttemptResult(
            [], AttemptEnding.ERROR, failure=f"unexpected content-type {headers.get('content-type')!r} from {where}"
        )
    return None


def called_targets(
    entries: list[JournalEntry], settings_of: Callable[[str, str], InvocationSettings | None]
) -> dict[str, InvocationSettings]:
    """Settings of every handler the entries call or send to, by ``service/handler``."""
    found: dict[str, InvocationSettings] = {}
    for message_type, payload in entries:
        if message_type == MessageType.CALL_COMMAND:
            call: pb.CallCommandMessage | pb.OneWayCallCommandMessage = pb.CallCommandMessage.FromString(payload)
        elif message_type == MessageType.ONE_WAY_CALL_COMMAND:
            call = pb.OneWayCallCommandMessage.FromString(payload)
        else:
            continue
        settings = settings_of(call.service_name, call.handler_name)
        if settings is not None:
            found[f"{call.service_name}/{call.handler_name}"] = settings
    return found

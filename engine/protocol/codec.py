"""Framing for the Restate service protocol (V5-V7).

A frame is an 8-byte big-endian header, ``type:u16 | flags:u16 | length:u32``,
followed by ``length`` bytes of protobuf. The type id alone says which message
the payload holds, so frames can be stored and forwarded without parsing them.
"""

from __future__ import annotations

import enum
import re
import struct
from collections.abc import Mapping
from types import MappingProxyType
from typing import NamedTuple

from google.protobuf.message import DecodeError, Message

from engine.protocol import service_protocol_pb2 as pb

MIN_PROTOCOL_VERSION = 5
# The highest version quill implements; like the reference server it speaks at most V6 unless V7
# is switched on (config ``enable_protocol_v7``).
MAX_PROTOCOL_VERSION = 7
DEFAULT_MAX_PROTOCOL_VERSION = 6

# Flags bit asking the peer to acknowledge this frame. On a V7 run proposal it
# selects a ProposeRunCompletionAck reply instead of the full notification.
REQUESTED_ACK = 0x8000

_HEADER = struct.Struct(">HHI")
HEADER_SIZE = _HEADER.size

_COMMAND_START = 0x0400
_NOTIFICATION_START = 0x8000
_CUSTOM_START = 0xFC00


class ProtocolError(Exception):
    """The byte stream or a payload does not follow the service protocol."""


def is_control(type_id: int) -> bool:
    return 0 <= type_id < _COMMAND_START


def is_command(type_id: int) -> bool:
    return _COMMAND_START <= type_id < _NOTIFICATION_START


def is_notification(type_id: int) -> bool:
    return _NOTIFICATION_START <= type_id < _CUSTOM_START


def is_custom(type_id: int) -> bool:
    """SDK-defined journal entries: opaque to us, but journaled and replayed."""
    return _CUSTOM_START <= type_id <= 0xFFFF


class MessageType(enum.IntEnum):
    """Type ids with a known schema. Custom entries (0xFC00+) are not members."""

    START = 0x0000
    SUSPENSION = 0x0001
    ERROR = 0x0002
    END = 0x0003
    COMMAND_ACK = 0x0004
    PROPOSE_RUN_COMPLETION = 0x0005
    AWAITING_ON = 0x0006
    PROPOSE_RUN_COMPLETION_ACK = 0x0007

    INPUT_COMMAND = 0x0400
    OUTPUT_COMMAND = 0x0401
    GET_LAZY_STATE_COMMAND = 0x0402
    SET_STATE_COMMAND = 0x0403
    CLEAR_STATE_COMMAND = 0x0404
    CLEAR_ALL_STATE_COMMAND = 0x0405
    GET_LAZY_STATE_KEYS_COMMAND = 0x0406
    GET_EAGER_STATE_COMMAND = 0x0407
    GET_EAGER_STATE_KEYS_COMMAND = 0x0408
    GET_PROMISE_COMMAND = 0x0409
    PEEK_PROMISE_COMMAND = 0x040A
    COMPLETE_PROMISE_COMMAND = 0x040B
    SLEEP_COMMAND = 0x040C
    CALL_COMMAND = 0x040D
    ONE_WAY_CALL_COMMAND = 0x040E
    SEND_SIGNAL_COMMAND = 0x0410
    RUN_COMMAND = 0x0411
    ATTACH_INVOCATION_COMMAND = 0x0412
    GET_INVOCATION_OUTPUT_COMMAND = 0x0413
    COMPLETE_AWAKEABLE_COMMAND = 0x0414

    GET_LAZY_STATE_COMPLETION = 0x8002
    GET_LAZY_STATE_KEYS_COMPLETION = 0x8006
    GET_PROMISE_COMPLETION = 0x8009
    PEEK_PROMISE_COMPLETION = 0x800A
    COMPLETE_PROMISE_COMPLETION = 0x800B
    SLEEP_COMPLETION = 0x800C
    CALL_COMPLETION = 0x800D
    CALL_INVOCATION_ID_COMPLETION = 0x800E
    RUN_COMPLETION = 0x8011
    ATTACH_INVOCATION_COMPLETION = 0x8012
    GET_INVOCATION_OUTPUT_COMPLETION = 0x8013
    SIGNAL_NOTIFICATION = 0xFBFF

    @property
    def is_command(self) -> bool:
        return is_command(self)

    @property
    def is_notification(self) -> bool:
        return is_notification(self)


# Keyed by MessageType members; typed by int so raw header ids look up directly.
MESSAGE_CLASSES: Mapping[int, type[Message]] = MappingProxyType(
    {
        MessageType.START: pb.StartMessage,
        MessageType.SUSPENSION: pb.SuspensionMessage,
        MessageType.ERROR: pb.ErrorMessage,
        MessageType.END: pb.EndMessage,
        MessageType.COMMAND_ACK: pb.CommandAckMessage,
        MessageType.PROPOSE_RUN_COMPLETION: pb.ProposeRunCompletionMessage,
        MessageType.AWAITING_ON: pb.AwaitingOnMessage,
        MessageType.PROPOSE_RUN_COMPLETION_ACK: pb.ProposeRunCompletionAckMessage,
        MessageType.INPUT_COMMAND: pb.InputCommandMessage,
        MessageType.OUTPUT_COMMAND: pb.OutputCommandMessage,
        MessageType.GET_LAZY_STATE_COMMAND: pb.GetLazyStateCommandMessage,
        MessageType.SET_STATE_COMMAND: pb.SetStateCommandMessage,
        MessageType.CLEAR_STATE_COMMAND: pb.ClearStateCommandMessage,
        MessageType.CLEAR_ALL_STATE_COMMAND: pb.ClearAllStateCommandMessage,
        MessageType.GET_LAZY_STATE_KEYS_COMMAND: pb.GetLazyStateKeysCommandMessage,
        MessageType.GET_EAGER_STATE_COMMAND: pb.GetEagerStateCommandMessage,
        MessageType.GET_EAGER_STATE_KEYS_COMMAND: pb.GetEagerStateKeysCommandMessage,
        MessageType.GET_PROMISE_COMMAND: pb.GetPromiseCommandMessage,
        MessageType.PEEK_PROMISE_COMMAND: pb.PeekPromiseCommandMessage,
        MessageType.COMPLETE_PROMISE_COMMAND: pb.CompletePromiseCommandMessage,
        MessageType.SLEEP_COMMAND: pb.SleepCommandMessage,
        MessageType.CALL_COMMAND: pb.CallCommandMessage,
        MessageType.ONE_WAY_CALL_COMMAND: pb.OneWayCallCommandMessage,
        MessageType.SEND_SIGNAL_COMMAND: pb.SendSignalCommandMessage,
        MessageType.RUN_COMMAND: pb.RunCommandMessage,
        MessageType.ATTACH_INVOCATION_COMMAND: pb.AttachInvocationCommandMessage,
        MessageType.GET_INVOCATION_OUTPUT_COMMAND: pb.GetInvocationOutputCommandMessage,
        MessageType.COMPLETE_AWAKEABLE_COMMAND: pb.CompleteAwakeableCommandMessage,
        MessageType.GET_LAZY_STATE_COMPLETION: pb.GetLazyStateCompletionNotificationMessage,
        MessageType.GET_LAZY_STATE_KEYS_COMPLETION: pb.GetLazyStateKeysCompletionNotificationMessage,
        MessageType.GET_PROMISE_COMPLETION: pb.GetPromiseCompletionNotificationMessage,
        MessageType.PEEK_PROMISE_COMPLETION: pb.PeekPromiseCompletionNotificationMessage,
        MessageType.COMPLETE_PROMISE_COMPLETION: pb.CompletePromiseCompletionNotificationMessage,
        MessageType.SLEEP_COMPLETION: pb.SleepCompletionNotificationMessage,
        MessageType.CALL_COMPLETION: pb.CallCompletionNotificationMessage,
        MessageType.CALL_INVOCATION_ID_COMPLETION: pb.CallInvocationIdCompletionNotificationMessage,
        MessageType.RUN_COMPLETION: pb.RunCompletionNotificationMessage,
        MessageType.ATTACH_INVOCATION_COMPLETION: pb.AttachInvocationCompletionNotificationMessage,
        MessageType.GET_INVOCATION_OUTPUT_COMPLETION: pb.GetInvocationOutputCompletionNotificationMessage,
        MessageType.SIGNAL_NOTIFICATION: pb.SignalNotificationMessage,
    }
)

MESSAGE_TYPES: Mapping[type[Message], MessageType] = MappingProxyType(
    {cls: MessageType(type_id) for type_id, cls in MESSAGE_CLASSES.items()}
)


def encode_raw(type_id: int, payload: bytes, flags: int = 0) -> bytes:
    """Frame an already-serialized payload (e.g. a journal entry read from storage)."""
    return _HEADER.pack(type_id, flags, len(payload)) + payload


def frame_header(type_id: int, length: int, flags: int = 0) -> bytes:
    """The 8-byte header of a frame whose payload is sent (or joined) separately."""
    return _HEADER.pack(type_id, flags, length)


_COPY_MATTERS = 64 * 1024  # bodies from this size are copied once (see encode_input_command)


def encode_input_command(headers: list[tuple[str, str]], body: bytes | list[bytes]) -> bytes:
    """``InputCommandMessage(headers, value=Value(content=body))`` serialized exactly as protobuf
    serializes it, with the body (or its chunks, as the server read them) copied once: building
    the message and serializing it would copy a body of up to 32 MiB twice more. The headers are
    protobuf's own serialization (faster than Python); the value field is appended to it, which
    is what serializing the field would produce (tests pin the bytes against protobuf's)."""
    chunks = [body] if isinstance(body, bytes) else body
    size = sum(len(chunk) for chunk in chunks)
    header_messages = [pb.Header(key=k, value=v) for k, v in headers]
    if size < _COPY_MATTERS:  # small: protobuf alone is quicker than the Python around it
        content = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        return pb.InputCommandMessage(headers=header_messages, value=pb.Value(content=content)).SerializeToString()
    head = pb.InputCommandMessage(headers=header_messages).SerializeToString()
    content = b"\x0a" + _varint(size) if size else b""
    return b"".join([head, b"\x72" + _varint(len(content) + size) + content, *chunks])  # field 14: value


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def encode_message(msg: Message, flags: int = 0) -> bytes:
    """Serialize and frame a message; its type id comes from its class."""
    try:
        type_id = MESSAGE_TYPES[type(msg)]
    except KeyError:
        raise TypeError(f"{type(msg).__name__} is not a framed protocol message") from None
    return encode_raw(type_id, msg.SerializeToString(), flags)


class Frame(NamedTuple):
    type: int
    flags: int
    payload: bytes

    def parse(self) -> Message | None:
        """Decode the payload into its pb2 message.

        Returns None for custom entries (0xFC00-0xFFFF): they are valid but have
        no schema we know, so callers keep ``payload`` as is. Raises
        ProtocolError for any other unknown type id or a malformed payload.
        """
        cls = MESSAGE_CLASSES.get(self.type)
        if cls is None:
            if is_custom(self.type):
                return None
            raise ProtocolError(f"unknown message type 0x{self.type:04X}")
        try:
            return cls.FromString(self.payload)
        except DecodeError as exc:
            raise ProtocolError(f"malformed {cls.__name__} payload: {exc}") from exc


class FrameDecoder:
    """Splits a byte stream into frames, whatever the chunking of the input.

    Bytes of an incomplete frame stay buffered until a later ``feed``. A
    ``max_frame_size`` guards against a garbage length field (for instance a
    non-protocol body) making us buffer without bound. After a ProtocolError
    the stream has lost its framing and must be abandoned.
    """

    __slots__ = ("_buf", "_max_frame_size")

    def __init__(self, max_frame_size: int | None = None) -> None:
        # Always starts at a frame boundary: consumed bytes are dropped per feed.
        self._buf = bytearray()
        self._max_frame_size = max_frame_size

    def feed(self, data: bytes) -> list[Frame]:
        buf = self._buf
        buf += data
        pos = 0
        end = len(buf)
        frames: list[Frame] = []
        with memoryview(buf) as view:
            while end - pos >= HEADER_SIZE:
                type_id, flags, length = _HEADER.unpack_from(view, pos)
                if self._max_frame_size is not None and length > self._max_frame_size:
                    raise ProtocolError(
                        f"frame of type 0x{type_id:04X} declares {length} bytes,"
                        f" above the limit of {self._max_frame_size}"
                    )
                stop = pos + HEADER_SIZE + length
                if stop > end:
                    break
                frames.append(Frame(type_id, flags, bytes(view[pos + HEADER_SIZE : stop])))
                pos = stop
        # Whenever a frame completed, every byte buffered before this call
        # belonged to it, so the leftover moved here came from `data`: copying
        # stays linear in the input however the stream is chunked.
        if pos:
            del buf[:pos]
        return frames

    def remaining(self) -> int:
        """Bytes buffered that do not yet form a whole frame."""
        return len(self._buf)

    def finish(self) -> None:
        """Call at end of stream: raises ProtocolError if it stopped mid-frame."""
        if self.remaining():
            raise ProtocolError(f"stream ended inside a frame ({self.remaining()} bytes left over)")


def decode_frames(data: bytes) -> list[Frame]:
    """Decode a complete byte string that must hold only whole frames."""
    decoder = FrameDecoder()
    frames = decoder.feed(data)
    decoder.finish()
    return frames


_CONTENT_TYPE_PREFIX = "application/vnd.restate.invocation.v"
_CONTENT_TYPE_RE = re.compile(re.escape(_CONTENT_TYPE_PREFIX) + r"([0-9]+)", re.IGNORECASE)


def content_type(version: int) -> str:
    return f"{_CONTENT_TYPE_PREFIX}{version}"


def parse_content_type(value: str) -> int | None:
    """Protocol version named by a content-type header, or None if it names none.

    Media types are case-insensitive and may carry parameters, which we ignore.
    Whether the version is supported is left to the caller.
    """
    match = _CONTENT_TYPE_RE.fullmatch(value.split(";", 1)[0].strip())
    return int(match.group(1)) if match else None

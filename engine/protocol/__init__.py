"""Restate service protocol: message schema (``service_protocol_pb2``) and framing."""

from __future__ import annotations

from engine.protocol import service_protocol_pb2 as pb
from engine.protocol.codec import (
    DEFAULT_MAX_PROTOCOL_VERSION,
    HEADER_SIZE,
    MAX_PROTOCOL_VERSION,
    MESSAGE_CLASSES,
    MESSAGE_TYPES,
    MIN_PROTOCOL_VERSION,
    REQUESTED_ACK,
    Frame,
    FrameDecoder,
    MessageType,
    ProtocolError,
    content_type,
    decode_frames,
    encode_message,
    encode_raw,
    is_command,
    is_control,
    is_custom,
    is_notification,
    parse_content_type,
)

__all__ = [
    "DEFAULT_MAX_PROTOCOL_VERSION",
    "HEADER_SIZE",
    "MAX_PROTOCOL_VERSION",
    "MESSAGE_CLASSES",
    "MESSAGE_TYPES",
    "MIN_PROTOCOL_VERSION",
    "REQUESTED_ACK",
    "Frame",
    "FrameDecoder",
    "MessageType",
    "ProtocolError",
    "content_type",
    "decode_frames",
    "encode_message",
    "encode_raw",
    "is_command",
    "is_control",
    "is_custom",
    "is_notification",
    "parse_content_type",
    "pb",
]

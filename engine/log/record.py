"""The record envelope every partition log entry is, and the epoch fence that apply runs.

A record is one partition group commit (``COMMANDS``, the payload being the core's encoded command
batch, opaque here) or a new leader's ``ANNOUNCE_LEADER``. Each carries the writer's lease epoch:
the conditional append already refuses a deposed leader's write, and apply skips any record older
than the newest announcement as a second fence (as Restate does), so a record that slipped in
between a takeover and the new leader's first append is never applied. Time comes from the record
(``ts_ms``, the leader's clock when it built the batch) so that every replica applies the same way.

msgpack, ``array_like``: the field order is the storage format; add fields at the end with defaults.
"""

from __future__ import annotations

import enum

import msgspec


class RecordKind(enum.IntEnum):
    COMMANDS = 1
    ANNOUNCE_LEADER = 2


class Record(msgspec.Struct, frozen=True, array_like=True):
    epoch: int
    node: str
    ts_ms: int
    kind: RecordKind
    payload: bytes = b""

    @classmethod
    def commands(cls, *, epoch: int, node: str, ts_ms: int, payload: bytes) -> Record:
        return cls(epoch=epoch, node=node, ts_ms=ts_ms, kind=RecordKind.COMMANDS, payload=payload)

    @classmethod
    def announce_leader(cls, *, epoch: int, node: str, ts_ms: int) -> Record:
        return cls(epoch=epoch, node=node, ts_ms=ts_ms, kind=RecordKind.ANNOUNCE_LEADER)

    def encode(self) -> bytes:
        return _encoder.encode(self)

    @staticmethod
    def decode(data: bytes) -> Record:
        return _decoder.decode(data)


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Record)


def append_msg_id(node: str, epoch: int, expected_last: int) -> str:
    """The ``msg_id`` for the record a leader appends after ``expected_last``.

    Stable across that append's retries, distinct for every other append: one writer per epoch,
    one record per position. (JetStream rejects ids with whitespace; node names are plain tokens.)
    """
    return f"{node}.{epoch}.{expected_last}"


class EpochFence:
    """Decides, in log order, which records apply: none older than the newest announced epoch.

    The fence's epoch is partition state: persist it with the applied sequence (same batch) and
    build the fence from it after a restart or a snapshot restore.
    """

    def __init__(self, epoch: int = 0) -> None:
        self.epoch = epoch

    def admit(self, record: Record) -> bool:
        if record.kind is RecordKind.ANNOUNCE_LEADER:
            if record.epoch <= self.epoch:
                return False
            self.epoch = record.epoch
            return True
        return record.epoch >= self.epoch

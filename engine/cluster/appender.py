"""The replicated step of a partition's group commit (``Store.appender`` in cluster mode).

The log entries of one batch become one ``COMMANDS`` record, appended conditionally after the
last record this leader saw, with a msg id stable across retries: a deposed leader's append is
refused (``Fenced``) and fails the store, which stops the partition. The applied position stored
with each batch is (sequence, epoch): where a replay resumes, and the epoch fence to resume with.
"""

from __future__ import annotations

import msgspec

from engine.log.interface import PartitionLog
from engine.log.record import Record, append_msg_id
from engine.records import now_ms

_encode_entries = msgspec.msgpack.Encoder().encode
decode_entries = msgspec.msgpack.Decoder(list[bytes]).decode


class Position(msgspec.Struct, array_like=True):
    sequence: int
    epoch: int


_encode = msgspec.msgpack.Encoder().encode
_decode_position = msgspec.msgpack.Decoder(Position).decode


def read_position(raw: bytes | None) -> Position:
    return Position(0, 0) if raw is None else _decode_position(raw)


class LogAppender:
    def __init__(self, log: PartitionLog, node: str, epoch: int, last: int) -> None:
        self._log = log
        self.node = node
        self.epoch = epoch
        self.last = last  # the sequence of the last record of this partition's log we know

    async def append(self, entries: list[bytes]) -> int:
        record = Record.commands(epoch=self.epoch, node=self.node, ts_ms=now_ms(), payload=_encode_entries(entries))
        return await self._put(record)

    async def announce(self) -> int:
        """The new leader's first record: from here on, records of older epochs never apply."""
        return await self._put(Record.announce_leader(epoch=self.epoch, node=self.node, ts_ms=now_ms()))

    def position(self, sequence: int) -> bytes:
        return _encode(Position(sequence, self.epoch))

    async def _put(self, record: Record) -> int:
        msg_id = append_msg_id(self.node, self.epoch, self.last)
        sequence = await self._log.append(record.encode(), expected_last=self.last, msg_id=msg_id)
        self.last = sequence
        return sequence

"""Cluster mode's pure parts: the record envelope's storage format, the epoch fence, the version gate,
and that embedded mode never imports NATS."""

from __future__ import annotations

import subprocess
import sys

import pytest

from engine.errors import UnsupportedServer
from engine.log.record import EpochFence, Record, RecordKind, append_msg_id
from engine.log.version import check_max_payload, check_version, parse_version
from tests.support import REPO


def test_a_record_is_a_msgpack_array_in_field_order() -> None:
    record = Record.commands(epoch=7, node="n1", ts_ms=1_700_000_000_000, payload=b"\x01\x02")
    # [epoch, node, ts_ms, kind, payload]: the order is the storage format, so it is pinned here.
    assert record.encode() == b"\x95\x07\xa2n1\xcf\x00\x00\x01\x8b\xcf\xe5h\x00\x01\xc4\x02\x01\x02"
    assert Record.decode(record.encode()) == record
    announce = Record.announce_leader(epoch=9, node="n2", ts_ms=5)
    assert Record.decode(announce.encode()) == announce and announce.kind is RecordKind.ANNOUNCE_LEADER


def test_the_fence_skips_records_older_than_the_newest_announcement() -> None:
    fence = EpochFence()
    log = [
        Record.announce_leader(epoch=3, node="a", ts_ms=1),
        Record.commands(epoch=3, node="a", ts_ms=2, payload=b""),
        Record.announce_leader(epoch=5, node="b", ts_ms=3),
        Record.commands(epoch=3, node="a", ts_ms=4, payload=b""),  # the deposed leader, late
        Record.announce_leader(epoch=4, node="c", ts_ms=5),  # an older campaign's announcement, late
        Record.commands(epoch=5, node="b", ts_ms=6, payload=b""),
    ]
    assert [fence.admit(record) for record in log] == [True, True, True, False, False, True]
    assert fence.epoch == 5
    assert not EpochFence(5).admit(log[1])  # rebuilt from the persisted epoch, it fences the same way


def test_msg_ids_are_stable_per_append_and_distinct_across_appends() -> None:
    assert append_msg_id("n1", 4, 10) == append_msg_id("n1", 4, 10) == "n1.4.10"
    assert len({append_msg_id("n1", 4, 10), append_msg_id("n1", 5, 10), append_msg_id("n1", 4, 11)}) == 3


@pytest.mark.parametrize(
    ("text", "parsed"),
    [("2.15.1", (2, 15, 1)), ("v2.12.0", (2, 12, 0)), ("2.12.0-RC.3", (2, 12, 0)), ("2.9.25+build.1", (2, 9, 25))],
)
def test_server_versions_parse(text: str, parsed: tuple[int, int, int]) -> None:
    assert parse_version(text) == parsed


def test_servers_older_than_2_12_are_refused_with_a_reason_and_a_remedy() -> None:
    check_version("nats://n1:4222", "2.12.0")
    check_version("nats://n1:4222", "2.15.1")
    with pytest.raises(UnsupportedServer) as refused:
        check_version("nats://n1:4222", "2.9.25")
    assert str(refused.value).startswith("the NATS server at nats://n1:4222 runs 2.9.25; quill cluster mode needs")
    assert "nats-server#4320" in str(refused.value) and "quill[cluster]" in str(refused.value)
    with pytest.raises(UnsupportedServer, match="cannot read the NATS server version"):
        check_version("nats://n1:4222", "unknown")


def test_a_max_payload_below_a_record_is_refused_with_the_setting_to_use() -> None:
    check_max_payload("nats://n1:4222", 8 << 20, 8 << 20)
    with pytest.raises(UnsupportedServer, match=r"set `max_payload: 8MB`"):
        check_max_payload("nats://n1:4222", 1 << 20, (8 << 20) - 10)


def test_embedded_mode_never_imports_nats() -> None:
    code = (
        "import sys, quill.cli, quill.server, engine, engine.engine, engine.log, engine.log.record, ingress, admin\n"
        "loaded = sorted(m for m in sys.modules if m == 'nats' or m.startswith('nats.'))\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)

"""An outbox sequence is never used twice by a partition, even after its outbox drained and it
restarted: receivers in other processes (workers, cluster leaders) drop a sequence they already
applied from it, so a reused one would be a lost message."""

from __future__ import annotations

from pathlib import Path

from engine.partition.commands import CallCompleted
from engine.partition.effects import Step
from engine.partition.state import PartitionState
from engine.records import CallerRef, Completion
from engine.storage import keys
from engine.storage.store import Store


async def test_a_restarted_partition_with_an_empty_outbox_continues_its_sequence(tmp_path: Path) -> None:
    store = Store(tmp_path / "db")
    store.start()
    state = PartitionState(0, store)
    message = CallCompleted(CallerRef("inv_1", 1), Completion(value=b"5"))
    for _ in range(3):
        state.send(message, Step(0))
    assert state.outbox_sequence == 3
    for sequence in (1, 2, 3):  # delivered and acknowledged: the outbox is empty
        store.delete(keys.OUTBOX, keys.outbox_key(0, sequence))
    await store.flush()
    await store.close()

    reopened = Store(tmp_path / "db")
    reopened.start()
    assert reopened.last_key(keys.OUTBOX, keys.partition_prefix(0)) is None
    restarted = PartitionState(0, reopened)
    restarted.send(message, Step(0))
    assert restarted.outbox_sequence == 4
    await reopened.close()

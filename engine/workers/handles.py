"""What the facade asks of one partition, whether this process owns it or a peer worker does.

``LocalHandle`` calls the partition (and this worker's invoker) directly; ``RemoteHandle`` sends
the same question to the owning worker, where ``serve_partition_ops`` answers it with a
``LocalHandle``. With one worker every handle is local and the path is today's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

import msgspec

from engine.errors import NotFound
from engine.invoker.invoker import Invoker
from engine.invoker.retry import RetryState
from engine.partition.commands import Command, Delivered, Invoke
from engine.partition.processor import Partition
from engine.partition.reads import CompletedPage, InvocationFilter
from engine.partition.types import InvocationView, InvokeResult, JournalEntry, OperatorOutcome, Outcome
from engine.records import InvocationStatus, Phase, Schedule
from engine.storage import keys
from engine.telemetry.metrics import NO_METRICS, Metrics

T = TypeVar("T")
SubmitResult = InvokeResult | bool | OperatorOutcome | None
Inspection = tuple[InvocationStatus, list[JournalEntry]]
Listed = list[tuple[InvocationStatus, RetryState | None]]  # with the owning invoker's retry bookkeeping


class PartitionHandle(Protocol):
    id: int

    async def submit(self, command: Command) -> Any: ...
    async def call(self, command: Invoke) -> tuple[InvokeResult, Outcome | None]: ...
    async def attach(self, invocation_id: str) -> Outcome: ...
    async def view(self, invocation_id: str) -> InvocationView | None: ...
    async def inspect(self, invocation_id: str) -> Inspection | None: ...
    async def read_state(self, service: str, key: str, name: bytes) -> bytes | None: ...
    async def read_all_state(self, service: str, key: str) -> list[tuple[bytes, bytes]]: ...
    async def read_schedule(self, service: str, key: str, name: str) -> Schedule | None: ...
    async def retry_state(self, invocation_id: str) -> RetryState | None: ...
    async def reset_retries(self, invocation_id: str) -> None: ...
    async def lookup(self, invocation_ids: list[str]) -> Listed: ...
    async def unfinished_matching(self, wanted: InvocationFilter, limit: int | None) -> Listed: ...
    async def completed_page(
        self, wanted: InvocationFilter, after: bytes | None, size: int, ordered: bool = True
    ) -> CompletedPage: ...
    async def object_state(self, service: str | None, key: str | None) -> list[tuple[bytes, bytes]]: ...
    async def deliver(self, messages: list[Delivered]) -> None: ...


class LocalHandle:
    def __init__(self, partition: Partition, invoker: Invoker, metrics: Metrics = NO_METRICS) -> None:
        self.id = partition.id
        self.partition = partition
        self._invoker = invoker
        self._metrics = metrics  # apply latency, measured around the partition's submit

    async def submit(self, command: Command) -> Any:
        return await self._metrics.timed(self.partition.submit, command)

    async def call(self, command: Invoke) -> tuple[InvokeResult, Outcome | None]:
        """Invoke and wait for the result. Not created: a repeat (its retained result, or None for
        a second run of a workflow); an idempotent repeat of a running one waits for it."""
        waiters = self.partition.waiters
        waiter = waiters.wait(command.invocation_id)
        try:
            result = await self._metrics.timed(self.partition.submit, command)
            if not result.created and (command.idempotency_key is None or result.existing is not None):
                return result, result.existing
            return result, await waiter
        finally:
            waiters.forget(command.invocation_id, waiter)

    async def attach(self, invocation_id: str) -> Outcome:
        view = self.partition.reads.view(invocation_id)
        if view is None:
            raise NotFound("not found", invocation_id=invocation_id, source="invocation")
        if view.outcome is not None:
            return view.outcome
        waiters = self.partition.waiters
        waiter = waiters.wait(invocation_id)
        try:
            return await waiter
        finally:
            waiters.forget(invocation_id, waiter)

    async def view(self, invocation_id: str) -> InvocationView | None:
        return self.partition.reads.view(invocation_id)

    async def inspect(self, invocation_id: str) -> Inspection | None:
        return self.partition.reads.inspect(invocation_id)

    async def read_state(self, service: str, key: str, name: bytes) -> bytes | None:
        return self.partition.reads.read_state(service, key, name)

    async def read_all_state(self, service: str, key: str) -> list[tuple[bytes, bytes]]:
        """Every (name, value) of one object's state, staged writes included."""
        prefix = keys.object_key(self.partition.id, service, key)
        return [(name[len(prefix) :], value) for name, value in self.partition.store.scan_merged(keys.STATE, prefix)]

    async def read_schedule(self, service: str, key: str, name: str) -> Schedule | None:
        return self.partition.read_schedule(service, key, name)

    async def retry_state(self, invocation_id: str) -> RetryState | None:
        return self._invoker.retries.get(invocation_id)

    async def reset_retries(self, invocation_id: str) -> None:
        paused = self.partition.reads.phase(invocation_id) is Phase.PAUSED
        self._invoker.reset_retries(invocation_id, paused)

    def _with_retries(self, statuses: list[InvocationStatus]) -> Listed:
        retries = self._invoker.retries
        return [(status, retries.get(status.id)) for status in statuses]

    async def lookup(self, invocation_ids: list[str]) -> Listed:
        return self._with_retries(self.partition.reads.lookup(invocation_ids))

    async def unfinished_matching(self, wanted: InvocationFilter, limit: int | None) -> Listed:
        return self._with_retries(self.partition.reads.unfinished_matching(wanted, limit))

    async def completed_page(
        self, wanted: InvocationFilter, after: bytes | None, size: int, ordered: bool = True
    ) -> CompletedPage:
        # A scan of up to a page of statuses: on a thread, so the partition keeps working.
        return await asyncio.to_thread(self.partition.reads.completed_page, wanted, after, size, ordered)

    async def object_state(self, service: str | None, key: str | None) -> list[tuple[bytes, bytes]]:
        return self.partition.reads.object_state(service, key)

    async def deliver(self, messages: list[Delivered]) -> None:
        """Apply messages from other partitions (each once), answered when durable."""
        await asyncio.gather(*(self.partition.submit(message) for message in messages))


# -- over the wire -------------------------------------------------------------------------------
class _Submit(msgspec.Struct, array_like=True):
    partition: int
    command: Command


class _Call(msgspec.Struct, array_like=True):
    partition: int
    command: Invoke


class _ById(msgspec.Struct, array_like=True):
    partition: int
    invocation_id: str


class _State(msgspec.Struct, array_like=True):
    partition: int
    service: str
    key: str
    name: bytes


class _Object(msgspec.Struct, array_like=True):
    partition: int
    service: str
    key: str


class _Schedule(msgspec.Struct, array_like=True):
    partition: int
    service: str
    key: str
    name: str


class _Lookup(msgspec.Struct, array_like=True):
    partition: int
    invocation_ids: list[str]


class _Unfinished(msgspec.Struct, array_like=True):
    partition: int
    wanted: InvocationFilter
    limit: int | None


class _CompletedPage(msgspec.Struct, array_like=True):
    partition: int
    wanted: InvocationFilter
    after: bytes | None
    size: int
    ordered: bool


class _ObjectState(msgspec.Struct, array_like=True):
    partition: int
    service: str | None
    key: str | None

class _Deliver(msgspec.Struct, array_like=True):
    partition: int
    messages: list[Delivered]


class Peer(Protocol):
    """A transport to the process owning a partition (another worker, or its cluster leader)."""

    async def call(self, op: str, args: Any, result_type: type[T]) -> T: ...


class RemoteHandle:
    def __init__(self, partition_id: int, peer: Peer) -> None:
        self.id = partition_id
        self._peer = peer

    async def submit(self, command: Command) -> Any:
        return await self._peer.call("submit", _Submit(self.id, command), SubmitResult)  # type: ignore[arg-type]

    async def call(self, command: Invoke) -> tuple[InvokeResult, Outcome | None]:
        return await self._peer.call("call", _Call(self.id, command), tuple[InvokeResult, Outcome | None])

    async def attach(self, invocation_id: str) -> Outcome:
        return await self._peer.call("attach", _ById(self.id, str(invocation_id)), Outcome)

    async def view(self, invocation_id: str) -> InvocationView | None:
        return await self._peer.call("view", _ById(self.id, str(invocation_id)), InvocationView | None)  # type: ignore[arg-type]

    async def inspect(self, invocation_id: str) -> Inspection | None:
        return await self._peer.call("inspect", _ById(self.id, str(invocation_id)), Inspection | None)  # type: ignore[arg-type]

    async def read_state(self, service: str, key: str, name: bytes) -> bytes | None:
        return await self._peer.call("read_state", _State(self.id, service, key, name), bytes | None)  # type: ignore[arg-type]

    async def read_all_state(self, service: str, key: str) -> list[tuple[bytes, bytes]]:
        return await self._peer.call("read_all_state", _Object(self.id, service, key), list[tuple[bytes, bytes]])

    async def read_schedule(self, service: str, key: str, name: str) -> Schedule | None:
        args = _Schedule(self.id, service, key, name)
        return await self._peer.call("read_schedule", args, Schedule | None)  # type: ignore[arg-type]

    async def retry_state(self, invocation_id: str) -> RetryState | None:
        return await self._peer.call("retry_state", _ById(self.id, str(invocation_id)), RetryState | None)  # type: ignore[arg-type]

    async def reset_retries(self, invocation_id: str) -> None:
        await self._peer.call("reset_retries", _ById(self.id, str(invocation_id)), type(None))

    async def lookup(self, invocation_ids: list[str]) -> Listed:
        return await self._peer.call("lookup", _Lookup(self.id, invocation_ids), Listed)

    async def unfinished_matching(self, wanted: InvocationFilter, limit: int | None) -> Listed:
        return await self._peer.call("unfinished_matching", _Unfinished(self.id, wanted, limit), Listed)

    async def completed_page(
        self, wanted: InvocationFilter, after: bytes | None, size: int, ordered: bool = True
    ) -> CompletedPage:
        args = _CompletedPage(self.id, wanted, after, size, ordered)
        return await self._peer.call("completed_page", args, CompletedPage)  # type: ignore[arg-type]

    async def object_state(self, service: str | None, key: str | None) -> list[tuple[bytes, bytes]]:
        return await self._peer.call("object_state", _ObjectState(self.id, service, key), list[tuple[bytes, bytes]])

    async def deliver(self, messages: list[Delivered]) -> None:
        await self._peer.call("deliver_to", _Deliver(self.id, messages), type(None))


def partition_ops(local: dict[int, LocalHandle]) -> dict[str, Callable[[msgspec.Raw], Awaitable[Any]]]:
    """The handlers a worker serves for its own partitions (the other side of RemoteHandle)."""

    def owned(partition: int) -> LocalHandle:
        handle = local.get(partition)
        if handle is None:
            raise NotFound(f"partition {partition} is not served by this worker")
        return handle

    def decoder(kind: type[Any]) -> Callable[[msgspec.Raw], Any]:
        return msgspec.msgpack.Decoder(kind).decode

    submit, call, by_id = decoder(_Submit), decoder(_Call), decoder(_ById)
    state, schedule = decoder(_State), decoder(_Schedule)
    lookup, unfinished = decoder(_Lookup), decoder(_Unfinished)
    completed_page, object_state = decoder(_CompletedPage), decoder(_ObjectState)
    state, schedule, deliver = decoder(_State), decoder(_Schedule), decoder(_Deliver)
    obj = decoder(_Object)

    async def on_submit(raw: msgspec.Raw) -> Any:
        args = submit(raw)
        return await owned(args.partition).submit(args.command)

    async def on_call(raw: msgspec.Raw) -> Any:
        args = call(raw)
        return await owned(args.partition).call(args.command)

    def by_id_op(method: str) -> Callable[[msgspec.Raw], Awaitable[Any]]:
        async def handle(raw: msgspec.Raw) -> Any:
            args = by_id(raw)
            return await getattr(owned(args.partition), method)(args.invocation_id)

        return handle

    async def on_read_state(raw: msgspec.Raw) -> Any:
        args = state(raw)
        return await owned(args.partition).read_state(args.service, args.key, args.name)

    async def on_read_all_state(raw: msgspec.Raw) -> Any:
        args = obj(raw)
        return await owned(args.partition).read_all_state(args.service, args.key)

    async def on_read_schedule(raw: msgspec.Raw) -> Any:
        args = schedule(raw)
        return await owned(args.partition).read_schedule(args.service, args.key, args.name)

    async def on_lookup(raw: msgspec.Raw) -> Any:
        args = lookup(raw)
        return await owned(args.partition).lookup(args.invocation_ids)

    async def on_unfinished(raw: msgspec.Raw) -> Any:
        args = unfinished(raw)
        return await owned(args.partition).unfinished_matching(args.wanted, args.limit)

    async def on_completed_page(raw: msgspec.Raw) -> Any:
        args = completed_page(raw)
        return await owned(args.partition).completed_page(args.wanted, args.after, args.size, args.ordered)

    async def on_object_state(raw: msgspec.Raw) -> Any:
        args = object_state(raw)
        return await owned(args.partition).object_state(args.service, args.key)
    async def on_deliver(raw: msgspec.Raw) -> None:
        args = deliver(raw)
        await owned(args.partition).deliver(args.messages)

    return {
        "submit": on_submit,
        "deliver_to": on_deliver,
        "call": on_call,
        "read_state": on_read_state,
        "read_all_state": on_read_all_state,
        "read_schedule": on_read_schedule,
        "lookup": on_lookup,
        "unfinished_matching": on_unfinished,
        "completed_page": on_completed_page,
        "object_state": on_object_state,
        **{name: by_id_op(name) for name in ("attach", "view", "inspect", "retry_state", "reset_retries")},
    }

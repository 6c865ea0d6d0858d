"""The engine's public face: what ingress and admin may ask of it.

Requests are routed to the partition that owns their partition key; everything else (storage,
partitions, invoker, timers, schema) stays behind this class.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from typing import Any

import httpx
import msgspec

from engine.config import Config
from engine.dapr.actors import DEACTIVATE, IdleActors, actor_target, reentrancy_limit
from engine.dapr.apps import DaprApps
from engine.dapr.reminders import Schedule
from engine.errors import BadRequest, Conflict, NotFound, QuillError
from engine.ids import InvocationId, hashed_partition_key
from engine.invoker.http2 import Http2Pool
from engine.invoker.invoker import Invoker, RetryState
from engine.partition.processor import HandlerInfo, InvokeResult, Outcome, Partition
from engine.protocol import service_protocol_pb2 as pb
from engine.records import (
    CallCompleted,
    Command,
    Failure,
    InvocationStatus,
    Invoke,
    Pause,
    Purge,
    ReplaceState,
    SetSchedule,
    Signal,
    StateTransaction,
    Target,
    Terminate,
    Timer,
    TimerFired,
    now_ms,
)
from engine.runtime.timers import TimerService
from engine.schema.registry import Schema
from engine.storage import keys
from engine.storage.store import Store
from engine.telemetry.metrics import NO_METRICS, Metrics
from engine.telemetry.traces import Tracer, input_headers, start_tracing

log = logging.getLogger(__name__)


class InvocationRequest(msgspec.Struct, kw_only=True):
    target: Target
    body: bytes
    headers: list[tuple[str, str]]
    execution_time: int | None = None  # ms since epoch, for delayed sends
    idempotency_key: str | None = None
    exclusive: bool | None = None  # overrides the handler's kind (Dapr actors take the key's lock)


class Engine:
    def __init__(self, config: Config) -> None:
        self.config = config
        self._store: Store | None = None
        self._partitions: list[Partition] = []
        self._client: httpx.AsyncClient | None = None
        self._timers = TimerService()
        self._sweeper: asyncio.Task[None] | None = None
        self.schema: Schema
        self.invoker: Invoker
        self.dapr_apps: DaprApps  # Dapr apps and HTTP endpoints (service invocation, /v1.0/invoke)
        self.metrics = Metrics() if config.metrics else NO_METRICS
        self._tracer: Tracer | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        store = self._store = Store(self.config.data_path, self.metrics)
        store.start()
        count = self._partition_count(store)
        # Discovery and other control-plane calls; invocations use the invoker's own pool.
        self._client = httpx.AsyncClient(timeout=httpx.Timeout(30.0, connect=10.0))
        self._http2 = Http2Pool()
        self.schema = Schema(store, self.config.cluster_name, self.config.enable_protocol_v7, self._http2)
        self.schema.load()
        self.dapr_apps = DaprApps(store)
        self.dapr_apps.load()
        await self.dapr_apps.start()
        self._tracer = start_tracing(self.config, self._lineage)
        self.invoker = Invoker(self.config, self.schema, self._http2, self.dapr_apps, self.metrics, self._tracer)
        self.idle_actors = IdleActors(self.dapr_apps, self._deactivate_actor)
        self.idle_actors.start()
        self._partitions = [Partition(p, store, self, self.config.log_retained_entries) for p in range(count)]
        for partition in self._partitions:
            partition.recover()
        for partition in self._partitions:
            partition.redeliver_outbox()
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep_expired(), name="quill-retention-sweeper")
        recovered = sum(p.active_count for p in self._partitions)
        if recovered:
            log.info("recovered %d unfinished invocations", recovered)

    async def stop(self) -> None:
        # Producers of new work first (timers, sweeper, idle scan), then the invoker, then I/O.
        self._timers.close()
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
        if hasattr(self, "idle_actors"):
            await self.idle_actors.stop()
        if self._partitions:
            await self.invoker.stop()
        if self._tracer is not None:
            await self._tracer.close()
        if self._client is not None:
            await self._client.aclose()
        if hasattr(self, "dapr_apps"):
            await self.dapr_apps.close()
        if self._partitions:
            await self._http2.close()
        if self._store is not None:
            await self._store.close()

    @property
    def http_client(self) -> httpx.AsyncClient:
        assert self._client is not None
        return self._client

    # -- invocations -------------------------------------------------------------------------
    async def send(self, request: InvocationRequest) -> tuple[InvocationId, bool]:
        """Accept a one-way invocation once durable; False when it repeats an earlier one."""
        invocation_id, partition, command = self._prepare(request)
        result: InvokeResult = await self._submit(partition, command)
        return invocation_id, result.created

    async def call(self, request: InvocationRequest) -> tuple[InvocationId, Outcome]:
        """Invoke and wait for the result; a repeated idempotent request gets the first one's."""
        invocation_id, partition, command = self._prepare(request)
        waiter = partition.wait_for_completion(invocation_id)
        try:
            result: InvokeResult = await self._submit(partition, command)
            if not result.created:
                if command.idempotency_key is None:
                    raise Conflict(
                        "the workflow method was already invoked", invocation_id=invocation_id, source="invocation"
                    )
                if result.existing is not None:
                    return invocation_id, result.existing
            return invocation_id, await waiter
        finally:
            partition.forget_waiter(invocation_id, waiter)

    async def attach(self, invocation_id: InvocationId) -> Outcome:
        """Wait for the result of a running or retained invocation."""
        partition = self._partition_of(invocation_id)
        view = partition.view(invocation_id)
        if view is None:
            raise NotFound("not found", invocation_id=invocation_id, source="invocation")
        if view.outcome is not None:
            return view.outcome
        waiter = partition.wait_for_completion(invocation_id)
        try:
            return await waiter
        finally:
            partition.forget_waiter(invocation_id, waiter)

    def output(self, invocation_id: InvocationId) -> Outcome | None:
        """The result of a finished invocation, None while it runs."""
        view = self._partition_of(invocation_id).view(invocation_id)
        if view is None:
            raise NotFound("invocation not found")
        return view.outcome

    async def signal(
        self, invocation_id: InvocationId, index: int, value: bytes | None = None, failure: Failure | None = None
    ) -> None:
        """Complete awakeable ``index`` of ``invocation_id`` (resolve with value, reject with failure)."""
        await self._submit(self._partition_of(invocation_id), Signal(str(invocation_id), index, None, value, failure))

    async def replace_state(
        self, service: str, key: str, new_state: list[tuple[bytes, bytes]], version: str | None
    ) -> None:
        """Overwrite a virtual object's state between its invocations."""
        outcome = await self._submit(
            self._object_partition(service, key), ReplaceState(service, key, new_state, version)
        )
        if outcome == "locked":
            raise Conflict(f"'{service}/{key}' is locked by a running invocation, retry when it is done")
        if outcome == "conflict":
            raise Conflict(f"the state of '{service}/{key}' changed: version '{version}' is outdated")

    async def state_transaction(self, service: str, key: str, operations: list[tuple[bytes, bytes | None]]) -> None:
        """Apply Dapr actor state operations atomically."""
        await self._submit(self._object_partition(service, key), StateTransaction(service, key, operations))

    def read_state(self, service: str, key: str, name: bytes) -> bytes | None:
        return self._object_partition(service, key).read_state(service, key, name)

    async def set_schedule(self, service: str, key: str, kind: str, name: str, schedule: bytes | None) -> bool:
        """Register (or, with None, delete) an actor reminder or timer; whether one existed."""
        existed: bool = await self._submit(
            self._object_partition(service, key), SetSchedule(service, key, kind, name, schedule)
        )
        return existed

    def read_schedule(self, service: str, key: str, kind: str, name: str) -> Schedule | None:
        return self._object_partition(service, key).read_schedule(service, key, kind, name)

    async def _deactivate_actor(self, actor_type: str, actor_id: str) -> None:
        request = InvocationRequest(
            target=actor_target(actor_type, actor_id, DEACTIVATE), body=b"", headers=[], exclusive=True
        )
        await self.send(request)

    def _object_partition(self, service: str, key: str) -> Partition:
        return self._partitions[hashed_partition_key(service, key) % len(self._partitions)]

    async def purge(self, invocation_id: str) -> None:
        """Forget a completed invocation: its result, and so its idempotency key or workflow id."""
        parsed = _parse_id(invocation_id)
        _check(await self._submit(self._partition_of(parsed), Purge([str(parsed)], expired=False)), invocation_id)

    async def _sweep_expired(self) -> None:
        """Purge invocations whose retention ended; the expiry index is ordered by time, so each
        sweep reads only what is due."""
        batch = 1000
        while True:
            await asyncio.sleep(self.config.cleanup_interval)
            for partition in self._partitions:
                while expired := partition.expired(now_ms(), batch):
                    await self._submit(partition, Purge(expired, expired=True))
                    if len(expired) < batch:
                        break

    async def pause(self, invocation_id: str) -> None:
        parsed = _parse_id(invocation_id)
        _check(await self._submit(self._partition_of(parsed), Pause(str(parsed), False)), invocation_id)

    async def resume(self, invocation_id: str) -> None:
        """Run a paused invocation again, with a fresh retry budget."""
        parsed = _parse_id(invocation_id)
        _check(await self._submit(self._partition_of(parsed), Pause(str(parsed), True)), invocation_id)
        self.invoker.reset_retries(str(parsed))

    def retry_state(self, invocation_id: str) -> RetryState | None:
        """The invoker's retry bookkeeping for a running invocation (in memory, as Restate's)."""
        return self.invoker.retries.get(invocation_id)

    async def restart_as_new(self, invocation_id: str) -> InvocationId:
        """Run a completed invocation again from its input, under a new id (Restate's
        restart-as-new from the start; workflows cannot be restarted)."""
        parsed = _parse_id(invocation_id)
        partition = self._partition_of(parsed)
        active = partition.active.get(parsed)
        if active is not None:
            raise _refusal(
                "not_started" if active.status.phase in ("scheduled", "inboxed") else "running", invocation_id
            )
        retained = partition.retained(parsed)
        if retained is None:
            raise _refusal("not_found", invocation_id)
        info = self.handler_info(retained.target.service, retained.target.handler)
        if info is not None and info.workflow_run:
            raise QuillError(f"Restarting the workflow invocation '{invocation_id}' is not supported.", status=422)
        if retained.input_entry is None:
            raise QuillError(f"The input of the invocation '{invocation_id}' is not available any more.", status=410)
        entry = pb.InputCommandMessage.FromString(retained.input_entry)
        request = InvocationRequest(
            target=retained.target,
            body=entry.value.content,
            headers=[(h.key, h.value) for h in entry.headers],
            exclusive=retained.exclusive or None,
        )
        new_id, _ = await self.send(request)
        return new_id

    async def terminate(self, invocation_id: str, *, kill: bool) -> str:
        """Cancel or kill; see ``Partition._apply_terminate`` for the outcomes."""
        parsed = _parse_id(invocation_id)
        partition = self._partition_of(parsed)
        active = partition.active.get(parsed)
        lineage = self._lineage(parsed) if active is not None and self._tracer is not None else None
        outcome: str = await self._submit(partition, Terminate(str(parsed), kill))
        _check(outcome, invocation_id)
        if outcome == "done" and active is not None:
            # Completed here, not by an attempt: tell metrics and traces what the invoker would.
            self.metrics.invocation_completed(partition.id, active.status.target.service, success=False)
            if self._tracer is not None:
                failure = "[409] killed" if kill else "[409] cancelled"
                self._tracer.invocation_ended(active.status, failure, lineage[0] if lineage else None)
        return outcome

    def _prepare(self, request: InvocationRequest) -> tuple[InvocationId, Partition, Invoke]:
        target = request.target
        info = self.handler_info(target.service, target.handler) or HandlerInfo(
            False, False, int(self.config.idempotency_retention * 1000)
        )
        if request.exclusive is not None:
            info = info._replace(exclusive=request.exclusive)
        if info.workflow_run:
            invocation_id = InvocationId.for_workflow(target.service, target.key)
        elif request.idempotency_key is not None:
            invocation_id = InvocationId.for_idempotent(
                target.service, target.key, target.handler, request.idempotency_key
            )
        else:
            invocation_id = InvocationId.for_target(target.service, target.key)
        entry = pb.InputCommandMessage(
            headers=[pb.Header(key=k, value=v) for k, v in request.headers],
            value=pb.Value(content=request.body),
        )
        command = Invoke(
            invocation_id=str(invocation_id),
            target=target,
            input_entry=entry.SerializeToString(),
            execution_time=request.execution_time,
            exclusive=info.exclusive,
            retention=info.retention_ms,
            idempotency_key=request.idempotency_key,
        )
        return invocation_id, self._partition_of(invocation_id), command

    def _partition_of(self, invocation_id: str) -> Partition:
        return self._partitions[InvocationId(invocation_id).partition_key % len(self._partitions)]

    def _submit(self, partition: Partition, command: Command) -> asyncio.Future[Any]:
        return self.metrics.timed(partition.submit, command)

    # -- runtime callbacks from partitions (see processor.Runtime) ---------------------------
    def start_attempt(self, partition: Partition, invocation_id: str, attempt: int) -> None:
        self.invoker.start(partition, invocation_id, attempt)

    def arm_timer(self, partition: Partition, timer: Timer) -> None:
        self._timers.schedule(timer.fire_at, lambda: self.metrics.timed(partition.submit_detached, TimerFired(timer)))

    def deliver(self, source: Partition, outbox_key: bytes, command: Command) -> None:
        # Both partitions share one store: staging the delivery and the outbox delete together
        # makes the hand-over atomic, so a message is delivered exactly once.
        if isinstance(command, CallCompleted):
            target_id = command.caller.invocation_id
        else:
            target_id = command.invocation_id  # type: ignore[union-attr]
        self.metrics.timed(self._partition_of(target_id).submit_detached, command)
        self._store_or_fail().delete(keys.OUTBOX, outbox_key)

    def reentrancy_limit(self, actor_type: str) -> int:
        return reentrancy_limit(self.dapr_apps, actor_type)

    def handler_info(self, service: str, handler: str) -> HandlerInfo | None:
        entry = self.schema.services.get(service)
        found = entry.manifest.handler(handler) if entry is not None else None
        if entry is None or found is None:
            return None
        kind = entry.manifest.ty
        handler_ty = found.ty or {"VIRTUAL_OBJECT": "EXCLUSIVE", "WORKFLOW": "WORKFLOW"}.get(kind)
        workflow_run = handler_ty == "WORKFLOW"
        # What an operator set with PATCH /services/{name} wins over the manifest.
        override = self.schema.overrides.get(service)
        if workflow_run:
            retention = found.workflow_completion_retention
            if override is not None and override.workflow_completion_retention is not None:
                retention = override.workflow_completion_retention
            default = self.config.workflow_completion_retention
        else:
            retention = found.idempotency_retention
            if retention is None:
                retention = entry.manifest.idempotency_retention
            if override is not None and override.idempotency_retention is not None:
                retention = override.idempotency_retention
            default = self.config.idempotency_retention
        retention_ms = retention if retention is not None else int(default * 1000)
        return HandlerInfo(handler_ty in ("EXCLUSIVE", "WORKFLOW"), workflow_run, retention_ms)

    def _store_or_fail(self) -> Store:
        assert self._store is not None
        return self._store

    # -- helpers -----------------------------------------------------------------------------
    def _partition_count(self, store: Store) -> int:
        """N is fixed at first start: ids and keys were routed with it."""
        stored = store.get(keys.META, keys.PARTITION_COUNT_KEY)
        if stored is not None:
            count = int(stored)
            if count != self.config.partitions:
                log.warning("data dir has %d partitions; ignoring --partitions %d", count, self.config.partitions)
            return count
        if self.config.partitions < 1:
            raise BadRequest("partitions must be at least 1")
        store.put(keys.META, keys.PARTITION_COUNT_KEY, str(self.config.partitions).encode())
        return self.config.partitions

    # -- admin queries (read-only views for the admin API and its SQL tables) -----------------
    def inspect_invocation(self, invocation_id: str) -> tuple[InvocationStatus, list[tuple[int, bytes]]]:
        """Status and journal of one invocation; 400 for a malformed id, 404 when unknown."""
        parsed = _parse_id(invocation_id)
        found = self._partition_of(parsed).inspect(str(parsed))
        if found is None:
            raise _refusal("not_found", invocation_id)
        return found

    def all_invocations(self) -> list[InvocationStatus]:
        return [status for partition in self._partitions for status in partition.statuses()]

    def all_journals(self) -> list[tuple[InvocationStatus, list[tuple[int, bytes]]]]:
        return [entry for partition in self._partitions for entry in partition.journals()]

    # -- live views for /metrics (read at scrape time; see engine/telemetry/collector.py) -------
    @property
    def partition_count(self) -> int:
        return len(self._partitions)

    def invocation_census(self) -> Counter[tuple[int, str, str]]:
        """Unfinished invocations by (partition, service, status)."""
        return Counter(
            (partition.id, active.status.target.service, active.status.phase)
            for partition in self._partitions
            for active in partition.active.values()
        )

    def keyed_services(self) -> list[str]:
        """Registered virtual objects and workflows: the services with an inbox."""
        return [name for name, entry in self.schema.services.items() if entry.manifest.ty != "SERVICE"]

    def timers_armed(self) -> int:
        return self._timers.pending

    def http2_usage(self) -> tuple[int, int]:
        """(open connections, streams in use) to deployments."""
        return self._http2.usage()

    def invoker_load(self) -> tuple[int, int]:
        return self.invoker.load

    def _lineage(self, invocation_id: str) -> tuple[list[tuple[str, str]], str | None] | None:
        """An unfinished invocation's input headers and caller, for its trace's parent."""
        active = self._partition_of(invocation_id).active.get(invocation_id)
        if active is None:
            return None
        caller = active.status.caller
        return input_headers(active.journal), caller.invocation_id if caller is not None else None

    def all_state(self) -> list[tuple[int, str, str, bytes, bytes]]:
        """(partition, service, object key, state name, value) of every object's state."""
        return [(p.id, *keys.parse_state_key(key), value) for p in self._partitions for key, value in p.state_entries()]


# What a partition answers about an operator's request, as Restate's admin API words it.
_REFUSALS: dict[str, tuple[type[QuillError], int, str]] = {
    "not_found": (NotFound, 404, "The requested invocation '{}' does not exist"),
    "completed": (Conflict, 409, "The invocation '{}' was already completed."),
    "running": (Conflict, 409, "The invocation '{}' is not yet completed."),
    "not_running": (Conflict, 409, "The invocation '{}' is not running."),
    "not_started": (QuillError, 425, "The invocation '{}' has not started yet."),
}


def _refusal(outcome: str, invocation_id: str) -> QuillError:
    kind, status, message = _REFUSALS[outcome]
    return kind(message.format(invocation_id), status=status)


def _check(outcome: str, invocation_id: str) -> None:
    """Raise the admin error for a refused operation; other outcomes pass."""
    if outcome in _REFUSALS:
        raise _refusal(outcome, invocation_id)


def _parse_id(invocation_id: str) -> InvocationId:
    try:
        return InvocationId.parse(invocation_id)
    except ValueError as exc:
        raise BadRequest(f"The request field 'invocation_id' is invalid. Reason: {exc}") from exc

"""The engine's public face: what ingress and admin may ask of it.

Requests are routed to the partition that owns their partition key; everything else (storage,
partitions, invoker, timers, schema) stays behind this class.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

import msgspec

from engine.config import Config
from engine.dapr.actors import DEACTIVATE, IdleActors, actor_target, reentrancy_limit
from engine.dapr.apps import DaprApps
from engine.dapr.reminders import Schedule
from engine.dapr.targets import OwnListeners
from engine.errors import BadRequest, Conflict, NotFound, QuillError, StartupError, Unavailable
from engine.ids import InvocationId, hashed_partition_key
from engine.invoker.http2 import Http2Pool
from engine.invoker.identity import IdentityKeyError, RequestSigner
from engine.invoker.invoker import Invoker, RetryState
from engine.partition.processor import HandlerInfo, InvokeResult, Outcome, Partition
from engine.protocol import service_protocol_pb2 as pb
from engine.protocol.codec import encode_input_command
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
from engine.storage.store import StorageOptions, Store, is_disk_full

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)

_SHUTTING_DOWN = (
    "quill is shutting down; the invocation is durable and continues after the restart:"
    " attach to it by its id (x-restate-id) or repeat the request with the same idempotency key"
)


class InvocationRequest(msgspec.Struct, kw_only=True):
    """An invocation to make. ``body`` may be the chunks the server read: they are joined once,
    into the journaled input, and the list is emptied then (the chunks are not needed any more,
    and a 32 MiB body should not stay alive twice while the partition stores it)."""

    target: Target
    body: bytes | list[bytes]
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
        # Callers blocked on a result (/call, /attach), so a shutdown can answer them.
        self._waiting: dict[asyncio.Future[Outcome], str] = {}
        self._draining = False
        self._callers_released = False

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        signer = self._load_signer()
        options = StorageOptions(
            memory_budget=self.config.rocksdb_memory_budget, max_total_wal_size=self.config.rocksdb_max_total_wal_size
        )
        store = self._store = Store(self.config.data_path, options)
        store.start()
        count = self._partition_count(store)
        await self._check_writable(store)
        self._http2 = Http2Pool()
        self.schema = Schema(store, self.config.cluster_name, self.config.enable_protocol_v7, self._http2, signer)
        self.schema.load()
        self.dapr_apps = DaprApps(
            store, OwnListeners(self.config.listeners()), allow_url_targets=self.config.dapr_allow_url_targets
        )
        self.dapr_apps.load()
        self.invoker = Invoker(self.config, self.schema, self._http2, self.dapr_apps, signer)
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

    async def drain(self, timeout: float) -> None:
        """The first half of a shutdown: producers of new work stop (timers, sweeper, idle scan,
        new attempts), attempts in flight get ``timeout`` seconds to finish their current step, and
        callers still waiting for a result get a retryable 503 with the invocation's id."""
        if self._draining:
            return
        self._draining = True
        self._timers.close()
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
        if hasattr(self, "idle_actors"):
            await self.idle_actors.stop()
        if hasattr(self, "invoker"):
            await self.invoker.drain(timeout)
        self._callers_released = True
        for waiter, invocation_id in list(self._waiting.items()):
            if not waiter.done():
                waiter.set_exception(Unavailable(_SHUTTING_DOWN, invocation_id=invocation_id))

    def abandon_drain(self) -> None:
        """Stop waiting for attempts in flight (a second signal)."""
        if hasattr(self, "invoker"):
            self.invoker.abandon_drain()

    async def stop(self) -> None:
        # Producers of new work first (timers, sweeper, idle scan), then the invoker, then I/O.
        await self.drain(0)
        if hasattr(self, "invoker"):
            await self.invoker.stop()
        if self._client is not None:
            await self._client.aclose()
        if hasattr(self, "dapr_apps"):
            await self.dapr_apps.close()
        if hasattr(self, "_http2"):
            await self._http2.close()
        if self._store is not None:
            await self._store.close()

    @property
    def http_client(self) -> httpx.AsyncClient:
        """For discovery and other control-plane calls (invocations use the invoker's own pool);
        made on first use, so start-up does not import httpx."""
        if self._client is None:
            import httpx

            self._client = httpx.AsyncClient(timeout=httpx.Timeout(30.0, connect=10.0))
        return self._client

    # -- invocations -------------------------------------------------------------------------
    async def send(self, request: InvocationRequest) -> tuple[InvocationId, bool]:
        """Accept a one-way invocation once durable; False when it repeats an earlier one."""
        invocation_id, partition, command = self._prepare(request)
        result: InvokeResult = await partition.submit(command)
        return invocation_id, result.created

    async def call(self, request: InvocationRequest) -> tuple[InvocationId, Outcome]:
        """Invoke and wait for the result; a repeated idempotent request gets the first one's."""
        invocation_id, partition, command = self._prepare(request)
        waiter = self._wait_for(partition, invocation_id)
        try:
            result: InvokeResult = await partition.submit(command)
            if not result.created:
                if command.idempotency_key is None:
                    raise Conflict(
                        "the workflow method was already invoked", invocation_id=invocation_id, source="invocation"
                    )
                if result.existing is not None:
                    return invocation_id, result.existing
            return invocation_id, await waiter
        finally:
            self._waiting.pop(waiter, None)
            partition.forget_waiter(invocation_id, waiter)

    def _wait_for(self, partition: Partition, invocation_id: InvocationId) -> asyncio.Future[Outcome]:
        waiter = partition.wait_for_completion(invocation_id)
        self._waiting[waiter] = str(invocation_id)
        if self._callers_released:
            waiter.set_exception(Unavailable(_SHUTTING_DOWN, invocation_id=str(invocation_id)))
        return waiter

    async def attach(self, invocation_id: InvocationId) -> Outcome:
        """Wait for the result of a running or retained invocation."""
        partition = self._partition_of(invocation_id)
        view = partition.view(invocation_id)
        if view is None:
            raise NotFound("not found", invocation_id=invocation_id, source="invocation")
        if view.outcome is not None:
            return view.outcome
        waiter = self._wait_for(partition, invocation_id)
        try:
            return await waiter
        finally:
            self._waiting.pop(waiter, None)
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
        self._require_storage()
        await self._partition_of(invocation_id).submit(Signal(str(invocation_id), index, None, value, failure))

    async def replace_state(
        self, service: str, key: str, new_state: list[tuple[bytes, bytes]], version: str | None
    ) -> None:
        """Overwrite a virtual object's state between its invocations."""
        self._require_storage()
        outcome = await self._object_partition(service, key).submit(ReplaceState(service, key, new_state, version))
        if outcome == "locked":
            raise Conflict(f"'{service}/{key}' is locked by a running invocation, retry when it is done")
        if outcome == "conflict":
            raise Conflict(f"the state of '{service}/{key}' changed: version '{version}' is outdated")

    async def state_transaction(self, service: str, key: str, operations: list[tuple[bytes, bytes | None]]) -> None:
        """Apply Dapr actor state operations atomically."""
        self._require_storage()
        await self._object_partition(service, key).submit(StateTransaction(service, key, operations))

    def read_state(self, service: str, key: str, name: bytes) -> bytes | None:
        return self._object_partition(service, key).read_state(service, key, name)

    async def set_schedule(self, service: str, key: str, kind: str, name: str, schedule: bytes | None) -> bool:
        """Register (or, with None, delete) an actor reminder or timer; whether one existed."""
        self._require_storage()
        existed: bool = await self._object_partition(service, key).submit(
            SetSchedule(service, key, kind, name, schedule)
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
        self._require_storage()
        parsed = _parse_id(invocation_id)
        _check(await self._partition_of(parsed).submit(Purge([str(parsed)], expired=False)), invocation_id)

    async def _sweep_expired(self) -> None:
        """Purge invocations whose retention ended; the expiry index is ordered by time, so each
        sweep reads only what is due."""
        batch = 1000
        while True:
            await asyncio.sleep(self.config.cleanup_interval)
            for partition in self._partitions:
                while expired := partition.expired(now_ms(), batch):
                    await partition.submit(Purge(expired, expired=True))
                    if len(expired) < batch:
                        break

    async def pause(self, invocation_id: str) -> None:
        self._require_storage()
        parsed = _parse_id(invocation_id)
        _check(await self._partition_of(parsed).submit(Pause(str(parsed), False)), invocation_id)

    async def resume(self, invocation_id: str) -> None:
        """Run a paused invocation again, with a fresh retry budget."""
        self._require_storage()
        parsed = _parse_id(invocation_id)
        _check(await self._partition_of(parsed).submit(Pause(str(parsed), True)), invocation_id)
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
        self._require_storage()
        parsed = _parse_id(invocation_id)
        outcome: str = await self._partition_of(parsed).submit(Terminate(str(parsed), kill))
        _check(outcome, invocation_id)
        return outcome

    def _prepare(self, request: InvocationRequest) -> tuple[InvocationId, Partition, Invoke]:
        self._require_storage()
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
        input_entry = encode_input_command(request.headers, request.body)
        if isinstance(request.body, list):
            request.body.clear()
        command = Invoke(
            invocation_id=str(invocation_id),
            target=target,
            input_entry=input_entry,
            execution_time=request.execution_time,
            exclusive=info.exclusive,
            retention=info.retention_ms,
            idempotency_key=request.idempotency_key,
        )
        return invocation_id, self._partition_of(invocation_id), command

    def _partition_of(self, invocation_id: str) -> Partition:
        return self._partitions[InvocationId(invocation_id).partition_key % len(self._partitions)]

    # -- runtime callbacks from partitions (see processor.Runtime) ---------------------------
    def start_attempt(self, partition: Partition, invocation_id: str, attempt: int) -> None:
        self.invoker.start(partition, invocation_id, attempt)

    def arm_timer(self, partition: Partition, timer: Timer) -> None:
        self._timers.schedule(timer.fire_at, lambda: partition.submit_detached(TimerFired(timer)))

    def deliver(self, source: Partition, outbox_key: bytes, command: Command) -> None:
        # Both partitions share one store: staging the delivery and the outbox delete together
        # makes the hand-over atomic, so a message is delivered exactly once.
        if isinstance(command, CallCompleted):
            target_id = command.caller.invocation_id
        else:
            target_id = command.invocation_id  # type: ignore[union-attr]
        self._partition_of(target_id).submit_detached(command)
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

    # -- storage health ----------------------------------------------------------------------
    @property
    def storage_failure(self) -> Exception | None:
        """Why writes fail right now (a full disk, say), or None; the health endpoints' answer."""
        return self._store.failure if self._store is not None else None

    def _require_storage(self) -> None:
        """New work is refused while writes fail: it could not be made durable, and staging it
        would only grow memory until the disk has room again."""
        if self._store is not None and self._store.failure is not None:
            raise Unavailable(f"storage unavailable, retry later: {self._store.failure}")

    async def _check_writable(self, store: Store) -> None:
        store.put(keys.META, keys.LAST_START_KEY, str(now_ms()).encode())
        try:
            await store.flush()
        except Unavailable as exc:
            cause = store.failure or exc
            reason = "no space left on device" if is_disk_full(cause) else str(cause)
            raise StartupError(f"data dir {self.config.data_path}: cannot write: {reason}") from exc

    # -- helpers -----------------------------------------------------------------------------
    def _load_signer(self) -> RequestSigner | None:
        path = self.config.request_identity_private_key_pem_file
        if path is None:
            return None
        try:
            signer = RequestSigner.from_pem_file(path, self.config.request_identity_expiration)
        except IdentityKeyError as exc:
            raise StartupError(str(exc)) from exc
        # As restate-server logs it: the string to give the SDKs as identity key.
        log.info("Loaded request identity key kid: %s path: %s", signer.public_key, path)
        return signer

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

"""The engine's public face: what ingress and admin may ask of it.

Requests are routed to the partition that owns their partition key; everything else (storage,
partitions, invoker, timers, schema) stays behind this class. Commands are built here, outside
the partitions, with everything their apply needs (ids, the target's settings), so apply stays
deterministic.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec
from prometheus_client import CollectorRegistry, generate_latest

from engine.config import Config
from engine.dapr.actors import IdleActors
from engine.dapr.apps import DaprApps
from engine.dapr.own_listeners import OwnListeners
from engine.dapr.targets import DEACTIVATE, actor_target
from engine.errors import BadRequest, Conflict, NotFound, QuillError, StartupError, Unavailable
from engine.ids import InvalidInvocationId, InvocationId, object_partition_key
from engine.invoker.http2 import Http2Pool
from engine.invoker.identity import IdentityKeyError, RequestSigner
from engine.invoker.invoker import Invoker
from engine.invoker.retry import RetryState
from engine.limits.book import Delete, RuleBook, RuleBookError, Upsert
from engine.limits.registry import LimitRegistry
from engine.partition.admission import LimitUsage
from engine.partition.commands import (
    InvocationSettings,
    Invoke,
    Pause,
    Purge,
    ReplaceState,
    SetLimits,
    SetSchedule,
    Signal,
    StateTransaction,
    Terminate,
    recipient,
)
from engine.partition.processor import Partition
from engine.partition.reads import InvocationFilter, first_with_ties
from engine.partition.types import InvokeResult, JournalEntry, OperatorOutcome, Outcome
from engine.protocol import service_protocol_pb2 as pb
from engine.protocol.codec import encode_input_command
from engine.records import Failure, InvocationStatus, Phase, Promise, Schedule, Target, now_ms
from engine.runtime.executor import EffectExecutor
from engine.runtime.timers import TimerService
from engine.schema.registry import Schema
from engine.storage import keys
from engine.storage.metadata import Metadata
from engine.storage.store import StorageOptions, Store, is_disk_full
from engine.telemetry.collector import build_registry, merged_exposition
from engine.telemetry.metrics import NO_METRICS, Metrics
from engine.telemetry.traces import Tracer, input_headers, start_tracing
from engine.workers.handles import LocalHandle, PartitionHandle, RemoteHandle, partition_ops
from engine.workers.layout import WorkerPlan, store_path
from engine.workers.node import WorkerNode
from engine.workers.rpc import Handler

if TYPE_CHECKING:
    from engine.cluster.delivery import ClusterDeliverer
    from engine.cluster.node import ClusterNode

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)

# Settings of a target no deployment serves (yet): a plain handler, results kept as configured.
_UNKNOWN = InvocationSettings(exclusive=False, workflow_run=False, retention_ms=0)
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
    reentrancy: str | None = None  # a reentrant call chain (Dapr-Reentrancy-Id)
    reentrancy_limit: int = 0  # how deep that chain may go on one object
    scope: str | None = None  # flow control (validated by the caller); part of the id's identity
    limit_key: str | None = None  # canonical, only with a scope


class Engine:
    """``plan`` None: the one process serves every partition. Otherwise this is worker
    ``plan.index`` of ``plan.count``, owning the partitions ``p % count == index``."""

    def __init__(self, config: Config, plan: WorkerPlan | None = None) -> None:
        self.config = config
        self.plan = plan
        self._store: Store | None = None
        self._partitions: list[Partition] = []  # the ones this process owns
        self._handles: list[PartitionHandle] = []  # every partition, by id
        self._local_ids: list[int] = []
        self._node: WorkerNode | None = None
        self._metrics_registry: CollectorRegistry | None = None
        self._cluster: ClusterNode | None = None
        self._cluster_deliverer: ClusterDeliverer | None = None
        # Invocations this process received, and those of them another worker owns.
        self.invocations = 0
        self.forwarded = 0
        self._client: httpx.AsyncClient | None = None
        self._timers = TimerService()
        self._sweeper: asyncio.Task[None] | None = None
        self.schema: Schema
        self.invoker: Invoker
        self.metrics = Metrics() if config.metrics else NO_METRICS
        self._tracer: Tracer | None = None
        self.dapr_apps: DaprApps  # Dapr apps and HTTP endpoints (service invocation, /v1.0/invoke)
        self.limits: LimitRegistry  # the concurrency rule book (flow control)
        self._recovered = False  # this process's partitions are recovered: rule changes may reach them
        self._draining = False

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
        cluster = self.config.cluster is not None
        # Cluster mode: this store keeps only the node's metadata; each partition it leads has a
        # store of its own, a cache of the partition's log.
        where = self.config.data_path / "node" if cluster else store_path(self.config.data_path, self.plan)
        store = self._store = Store(where, options, self.metrics)
        store.start()
        count = self._partition_count(store)
        await self._check_writable(store)
        plan = self.plan
        await _index_unfinished(store)
        await _index_created(store)
        self._http2 = Http2Pool()
        meta = Metadata(store)
        self.schema = Schema(meta, self.config, self._http2, signer)
        self.schema.load()
        self.dapr_apps = DaprApps(
            meta, OwnListeners(self.config.listeners()), allow_url_targets=self.config.dapr_allow_url_targets
        )
        self.dapr_apps.load()
        self.limits = LimitRegistry(meta)
        self.limits.load()
        self.idle_actors = IdleActors(self.dapr_apps, self._deactivate_actor)
        self.idle_actors.start()
        self._tracer = start_tracing(self.config, self._lineage)
        self.invoker = Invoker(
            self.config,
            self.schema,
            self._http2,
            self.dapr_apps,
            self.idle_actors.touch,
            signer,
            self.metrics,
            self._tracer,
        )
        executor = self._executor = EffectExecutor(
            store, self._timers, self.invoker, self._local_partition, self.metrics
        )
        if cluster:
            await self._join_cluster(meta, count)
            return
        self._local_ids = [p for p in range(count) if plan is None or plan.owns(p)]
        local: dict[int, LocalHandle] = {}
        for p in self._local_ids:
            partition = Partition(p, store, executor, now_ms, self.config.log_retained_entries)
            self._partitions.append(partition)
            local[p] = LocalHandle(partition, self.invoker, self.metrics)
        if plan is not None:
            node = self._node = WorkerNode(plan, meta, local, count, self._reload_metadata, self._gather_ops())
            executor.remote = lambda source, key, message: node.deliverer.send(
                node.worker_of(self._partition_id(recipient(message))), source, key, message
            )
            node.deliverer.start()
            self._handles = [
                local[p] if p in local else RemoteHandle(p, node.peers[node.worker_of(p)]) for p in range(count)
            ]
        else:
            self._handles = [local[p] for p in range(count)]
        for partition in self._partitions:
            partition.recover()
        for partition in self._partitions:
            partition.redeliver_outbox()
        if self._node is not None:
            await self._node.serve()
        self._recovered = True
        await self.enforce_limits()  # a crash may have come between a rule change and its delivery
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep_expired(), name="quill-retention-sweeper")
        recovered = sum(p.reads.active_count for p in self._partitions)
        if recovered:
            log.info("recovered %d unfinished invocations", recovered)

    async def _join_cluster(self, meta: Metadata, count: int) -> None:
        # Imported here: the embedded mode never loads NATS.
        from engine.cluster.delivery import ClusterDeliverer
        from engine.cluster.node import ClusterNode

        node = self._cluster = ClusterNode(self.config, meta, self._reload_metadata)
        count = await node.connect(count)
        # Every partition has a store of its own here: deliveries go through the leaders.
        deliverer = self._cluster_deliverer = ClusterDeliverer(count, lambda p: self._handles[p])
        self._executor.remote = deliverer.send
        self._handles = [RemoteHandle(p, node.leader(p)) for p in range(count)]
        self._recovered = True  # partitions join self._partitions recovered (adopt)
        node.start(self)
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep_expired(), name="quill-retention-sweeper")

    def topology(self) -> dict[str, Any]:
        """Which partitions this process serves: all (embedded), its own (a worker), those it
        leads (a cluster node)."""
        view: dict[str, Any] = {"partitions": len(self._handles), "local": list(self._local_ids)}
        if self.plan is not None:
            view["worker"] = self.plan.index
            view["workers"] = self.plan.count
        if self._cluster is not None:
            view["node"] = self._cluster.name
            view["leading"] = {str(p): lease.epoch for p, lease in sorted(self._cluster.leading.items())}
        return view

    # -- cluster mode: partitions come and go with their leases (engine.cluster.node) ----------
    def new_partition(self, partition_id: int, store: Store) -> Partition:
        return Partition(partition_id, store, self._executor, now_ms, self.config.log_retained_entries)

    def adopt(self, partition: Partition) -> dict[str, Handler]:
        handle = LocalHandle(partition, self.invoker)
        self._handles[partition.id] = handle
        self._partitions.append(partition)
        self._local_ids = sorted(p.id for p in self._partitions)
        partition.recover()
        partition.redeliver_outbox()
        if partition.reads.limits_version < self.limits.book.version:
            partition.submit_detached(self._limits_command())  # the book changed while nobody led it
        return partition_ops({partition.id: handle})

    async def release(self, partition_id: int) -> None:
        assert self._cluster is not None
        for partition in [p for p in self._partitions if p.id == partition_id]:
            partition.stop(f"partition {partition_id} moved to another node; retry")
            self._partitions.remove(partition)
        self._local_ids = sorted(p.id for p in self._partitions)
        self._handles[partition_id] = RemoteHandle(partition_id, self._cluster.leader(partition_id))
        if self._cluster_deliverer is not None:
            await self._cluster_deliverer.forget(partition_id)

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
        for partition in self._partitions:
            partition.waiters.close(lambda invocation_id: Unavailable(_SHUTTING_DOWN, invocation_id=invocation_id))
        # Then the peers: what the attempts' last steps sent on waits in outboxes, redelivered later.
        if self._cluster_deliverer is not None:
            await self._cluster_deliverer.stop()
        if self._cluster is not None:
            await self._cluster.stop()
        if self._node is not None:
            log.info("forwarded %d of the %d invocations received here", self.forwarded, self.invocations)
            await self._node.stop()

    def abandon_drain(self) -> None:
        """Stop waiting for attempts in flight (a second signal)."""
        if hasattr(self, "invoker"):
            self.invoker.abandon_drain()

    async def stop(self) -> None:
        # Producers of new work first (timers, sweeper, idle scan), then the invoker, then I/O.
        await self.drain(0)
        if hasattr(self, "invoker"):
            await self.invoker.stop()
        if self._tracer is not None:
            await self._tracer.close()
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
        invocation_id, handle, command = self._prepare(request)
        self._count(handle)
        result: InvokeResult = await handle.submit(command)
        return invocation_id, result.created

    async def call(self, request: InvocationRequest) -> tuple[InvocationId, Outcome]:
        """Invoke and wait for the result; a repeated idempotent request gets the first one's."""
        invocation_id, handle, command = self._prepare(request)
        self._count(handle)
        try:
            _, outcome = await handle.call(command)
        except Unavailable as exc:
            raise self._unanswered(exc, invocation_id) from exc
        if outcome is None:
            raise Conflict("the workflow method was already invoked", invocation_id=invocation_id, source="invocation")
        return invocation_id, outcome

    async def attach(self, invocation_id: InvocationId) -> Outcome:
        """Wait for the result of a running or retained invocation."""
        try:
            return await self._partition_of(invocation_id).attach(invocation_id)
        except Unavailable as exc:
            raise self._unanswered(exc, invocation_id) from exc

    def _unanswered(self, error: Unavailable, invocation_id: str) -> Unavailable:
        """A waiting caller's 503 always names the invocation, so it can attach or retry (and, while
        this process shuts down, says so: a peer's answer may have been cut by it)."""
        return Unavailable(_SHUTTING_DOWN if self._draining else error.message, invocation_id=invocation_id)

    async def output(self, invocation_id: InvocationId) -> Outcome | None:
        """The result of a finished invocation, None while it runs."""
        view = await self._partition_of(invocation_id).view(invocation_id)
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
        self,
        service: str,
        key: str,
        new_state: list[tuple[bytes, bytes]],
        version: str | None,
        scope: str | None = None,
    ) -> None:
        """Overwrite a virtual object's (or a scoped workflow's) state between its invocations."""
        self._require_storage()
        partition = self._object_partition(service, key, scope)
        outcome = await partition.submit(ReplaceState(service, key, new_state, version, scope))
        if outcome is OperatorOutcome.LOCKED:
            raise Conflict(f"'{service}/{key}' is locked by a running invocation, retry when it is done")
        if outcome is OperatorOutcome.CONFLICT:
            raise Conflict(f"the state of '{service}/{key}' changed: version '{version}' is outdated")

    async def state_transaction(self, service: str, key: str, operations: list[tuple[bytes, bytes | None]]) -> None:
        """Apply state operations on one object atomically (Dapr actor state)."""
        self._require_storage()
        await self._object_partition(service, key).submit(StateTransaction(service, key, operations))

    async def read_state(self, service: str, key: str, name: bytes) -> bytes | None:
        return await self._object_partition(service, key).read_state(service, key, name)

    async def read_all_state(self, service: str, key: str) -> list[tuple[bytes, bytes]]:
        """Every (name, value) of one object's state."""
        return await self._object_partition(service, key).read_all_state(service, key)

    async def set_schedule(self, service: str, key: str, name: str, schedule: Schedule | None) -> bool:
        """Register (or, with None, delete) a recurring invocation of an object; whether one existed."""
        self._require_storage()
        existed: bool = await self._object_partition(service, key).submit(SetSchedule(service, key, name, schedule))
        return existed

    async def read_schedule(self, service: str, key: str, name: str) -> Schedule | None:
        return await self._object_partition(service, key).read_schedule(service, key, name)

    async def _deactivate_actor(self, actor_type: str, actor_id: str) -> None:
        request = InvocationRequest(
            target=actor_target(actor_type, actor_id, DEACTIVATE), body=b"", headers=[], exclusive=True
        )
        await self.send(request)

    def _object_partition(self, service: str, key: str, scope: str | None = None) -> PartitionHandle:
        return self._handles[object_partition_key(service, key, scope) % len(self._handles)]

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
                if partition.failure is not None:
                    continue  # it stopped loudly already; a restart recovers it
                while expired := partition.reads.expired(now_ms(), batch):
                    try:
                        await partition.submit(Purge(expired, expired=True))
                    except QuillError as exc:
                        log.warning("partition %d: purging expired invocations failed: %s", partition.id, exc)
                        break
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
        handle = self._partition_of(parsed)
        await handle.reset_retries(str(parsed))
        _check(await handle.submit(Pause(str(parsed), True)), invocation_id)

    async def retry_state(self, invocation_id: str) -> RetryState | None:
        """The invoker's retry bookkeeping for a running invocation (in memory, as Restate's)."""
        return await self._partition_of(invocation_id).retry_state(invocation_id)

    async def restart_as_new(self, invocation_id: str) -> InvocationId:
        """Run a completed invocation again from its input, under a new id (Restate's
        restart-as-new from the start; workflows cannot be restarted)."""
        parsed = _parse_id(invocation_id)
        found = await self._partition_of(parsed).inspect(parsed)
        if found is None:
            raise _refusal(OperatorOutcome.NOT_FOUND, invocation_id)
        retained, _ = found
        if retained.phase is not Phase.COMPLETED:
            started = retained.phase.started
            raise _refusal(OperatorOutcome.RUNNING if started else OperatorOutcome.NOT_STARTED, invocation_id)
        settings = self.schema.settings(retained.target.service, retained.target.handler)
        if settings is not None and settings.workflow_run:
            raise QuillError(f"Restarting the workflow invocation '{invocation_id}' is not supported.", status=422)
        if retained.input_entry is None:
            raise QuillError(f"The input of the invocation '{invocation_id}' is not available any more.", status=410)
        entry = pb.InputCommandMessage.FromString(retained.input_entry)
        request = InvocationRequest(
            target=retained.target,
            body=entry.value.content,
            headers=[(h.key, h.value) for h in entry.headers],
            exclusive=retained.exclusive or None,
            scope=retained.scope,
            limit_key=retained.limit_key,
        )
        new_id, _ = await self.send(request)
        return new_id

    async def terminate(self, invocation_id: str, *, kill: bool) -> OperatorOutcome:
        """Cancel or kill: DONE (completed at once), SIGNALLED (the handler sees the cancellation)."""
        self._require_storage()
        parsed = _parse_id(invocation_id)
        partition = self._local_partition(parsed)
        active = partition.reads.unfinished(parsed) if partition is not None else None
        lineage = self._lineage(parsed) if active is not None and self._tracer is not None else None
        outcome: OperatorOutcome = await self._partition_of(parsed).submit(Terminate(str(parsed), kill))
        _check(outcome, invocation_id)
        if outcome is OperatorOutcome.DONE and active is not None and self._tracer is not None:
            # Completed here, not by an attempt: its trace ends here.
            failure = "[409] killed" if kill else "[409] cancelled"
            self._tracer.invocation_ended(active[0], failure, lineage[0] if lineage else None)
        return outcome

    def invocation_settings(self, service: str, handler: str) -> InvocationSettings | None:
        """What a new invocation of ``service/handler`` needs; None when no deployment serves it."""
        settings = self.schema.settings(service, handler)
        return None if settings is None else settings.invocation

    def _prepare(self, request: InvocationRequest) -> tuple[InvocationId, PartitionHandle, Invoke]:
        self._require_storage()
        target = request.target
        settings = self.invocation_settings(target.service, target.handler) or InvocationSettings(
            exclusive=False, workflow_run=False, retention_ms=int(self.config.idempotency_retention * 1000)
        )
        exclusive = settings.exclusive if request.exclusive is None else request.exclusive
        scope = request.scope
        if settings.workflow_run:
            invocation_id = InvocationId.for_workflow(target.service, target.key, scope)
        elif request.idempotency_key is not None:
            invocation_id = InvocationId.for_idempotent(
                target.service, target.object_key, target.handler, request.idempotency_key, scope
            )
        else:
            # An unkeyed invocation may run anywhere: in a partition of this process (a scoped one
            # in its scope's partition, wherever that is).
            invocation_id = InvocationId.for_target(
                target.service, target.object_key, self._local_ids, len(self._handles), scope=scope
            )
        input_entry = encode_input_command(request.headers, request.body)
        if isinstance(request.body, list):
            request.body.clear()
        command = Invoke(
            invocation_id=str(invocation_id),
            target=target,
            input_entry=input_entry,
            execution_time=request.execution_time,
            exclusive=exclusive,
            retention=settings.retention_ms,
            idempotency_key=request.idempotency_key,
            reentrancy=request.reentrancy,
            reentrancy_limit=request.reentrancy_limit,
            scope=scope,
            limit_key=request.limit_key,
        )
        return invocation_id, self._partition_of(invocation_id), command

    def _local_partition(self, invocation_id: str) -> Partition | None:
        if self._cluster is not None:
            return None
        handle = self._handles[self._partition_id(invocation_id)] if self._handles else None
        return handle.partition if isinstance(handle, LocalHandle) else None

    def _count(self, handle: PartitionHandle) -> None:
        self.invocations += 1
        if not isinstance(handle, LocalHandle):
            self.forwarded += 1

    # -- live views for /metrics (read at scrape time; see engine/telemetry/collector.py) -------
    async def metrics_exposition(self) -> bytes:
        """``/metrics`` of the whole server: with workers, every worker's samples (``worker``
        label), gathered from them and merged into one exposition."""
        if self._node is None:
            return generate_latest(self._registry())
        texts = [await self._local_metrics(), *await self._node.gather("metrics", str)]
        return merged_exposition(texts)

    async def _local_metrics(self) -> str:
        return generate_latest(self._registry()).decode()

    def _registry(self) -> CollectorRegistry:
        if self._metrics_registry is None:
            worker = {"worker": str(self.plan.index)} if self.plan is not None else None
            self._metrics_registry = build_registry(self.metrics, self, worker)
        return self._metrics_registry

    @property
    def partition_count(self) -> int:
        return len(self._handles)

    def invocation_census(self) -> Counter[tuple[int, str, str]]:
        """This process's unfinished invocations by (partition, service, status)."""
        return Counter(
            {
                (partition.id, service, phase): count
                for partition in self._partitions
                for (service, phase), count in partition.reads.census().items()
            }
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
        """An unfinished invocation's input headers and caller, for its trace's parent (only
        for partitions of this process: another worker's are not looked up)."""
        partition = self._local_partition(invocation_id)
        found = partition.reads.unfinished(invocation_id) if partition is not None else None
        if found is None:
            return None
        status, journal = found
        caller = status.caller
        return input_headers(journal), caller.invocation_id if caller is not None else None

    def _partition_id(self, invocation_id: str) -> int:
        return InvocationId(invocation_id).partition_key % len(self._handles)

    def _partition_of(self, invocation_id: str) -> PartitionHandle:
        return self._handles[self._partition_id(invocation_id)]

    # -- flow control: the rule book -----------------------------------------------------------
    async def change_limit_rules(self, changes: list[Upsert | Delete]) -> tuple[RuleBook, RuleBook]:
        """Apply a batch to the rule book (atomically, durably) and have every partition enforce
        it, the invocations already waiting included: the book before and after. 409 on a failed
        precondition, 422 when the book would be over its cap."""
        try:
            books = await self.limits.change(changes, now_ms())
        except RuleBookError as exc:
            raise (Conflict(str(exc)) if exc.conflict else QuillError(str(exc), status=422)) from exc
        await self.enforce_limits()
        return books

    async def enforce_limits(self) -> None:
        """Send the stored rule book to this worker's partitions that enforce an older one (after
        a change, at start; other workers do the same when the change reaches them)."""
        command = self._limits_command()
        await asyncio.gather(*(p.submit(command) for p in self._outdated_limits()))

    def _limits_command(self) -> SetLimits:
        book = self.limits.book
        return SetLimits(book.version, book.enforced())

    def _outdated_limits(self) -> list[Partition]:
        return [p for p in self._partitions if p.reads.limits_version < self.limits.book.version]

    async def limit_usage(self) -> list[LimitUsage]:
        """Every scope / limit-key node with usage or waiters, as ``sys_user_limits`` shows them."""
        return await self._everywhere("limits", self._local_limit_usage, _Usage)

    async def _local_limit_usage(self) -> list[LimitUsage]:
        return [row for partition in self._partitions for row in partition.reads.limit_usage()]

    # -- storage health ----------------------------------------------------------------------
    async def storage_failure(self) -> str | None:
        """Why writes fail right now (a full disk, say), or None: the health endpoints' answer.
        With --workers every worker is asked, since a full disk fails whichever store writes first."""
        failures = await self._everywhere("storage", self._local_storage_failure, _Failures)
        return failures[0] if failures else None

    async def _local_storage_failure(self) -> list[str]:
        failure = self._store.failure if self._store is not None else None
        return [] if failure is None else [str(failure)]

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
    async def inspect_invocation(self, invocation_id: str) -> tuple[InvocationStatus, list[JournalEntry]]:
        """Status and journal of one invocation; 400 for a malformed id, 404 when unknown."""
        parsed = _parse_id(invocation_id)
        found = await self._partition_of(parsed).inspect(str(parsed))
        if found is None:
            raise _refusal(OperatorOutcome.NOT_FOUND, invocation_id)
        return found

    async def all_journals(self) -> list[tuple[InvocationStatus, list[JournalEntry]]]:
        """Journals of every unfinished invocation (completed ones keep none)."""
        return await self._everywhere("journals", self._local_journals, _Journals)

    async def find_invocations(self, invocation_ids: list[str]) -> _Invocations:
        """The invocations among ``invocation_ids`` that exist (malformed ids match nothing)."""
        by_partition: dict[int, list[str]] = {}
        for invocation_id in invocation_ids:
            try:
                parsed = InvocationId.parse(invocation_id)
            except ValueError:
                continue
            by_partition.setdefault(self._partition_id(parsed), []).append(str(parsed))
        answers = await asyncio.gather(*(self._handles[p].lookup(ids) for p, ids in by_partition.items()))
        return [found for answer in answers for found in answer]

    async def list_invocations(
        self, wanted: InvocationFilter, *, unfinished: bool, completed: bool, limit: int
    ) -> _Invocations:
        """The first ``limit`` invocations matching ``wanted`` in its order (newest or oldest
        first), with any created at the same time as the last: unfinished ones from memory,
        completed ones from each partition's CREATED index."""
        calls: list[Awaitable[_Invocations]] = []
        for handle in self._handles:
            if unfinished:
                calls.append(handle.unfinished_matching(wanted, limit))
            if completed:
                calls.append(self._completed_with_no_retry(handle, wanted, limit))
        found = [pair for answer in await asyncio.gather(*calls) for pair in answer]
        found.sort(key=lambda pair: pair[0].created_at, reverse=wanted.newest_first)
        kept = first_with_ties([status for status, _ in found], limit)
        return found[: len(kept)]

    @staticmethod
    async def _completed_with_no_retry(handle: PartitionHandle, wanted: InvocationFilter, limit: int) -> _Invocations:
        statuses, _ = await handle.completed_page(wanted, None, limit)
        return [(status, None) for status in statuses]

    async def unfinished_invocations(self, wanted: InvocationFilter) -> _Invocations:
        """Every unfinished invocation matching ``wanted`` (they are in memory, and few)."""
        answers = await asyncio.gather(*(handle.unfinished_matching(wanted, None) for handle in self._handles))
        return [pair for answer in answers for pair in answer]

    async def completed_invocations(
        self, wanted: InvocationFilter, page: int
    ) -> AsyncIterator[list[InvocationStatus]]:
        """Every completed invocation matching ``wanted``, ``page`` at a time, partition by
        partition, in no particular order: a reader of all of them holds one page, never the
        whole table."""
        for handle in self._handles:
            after: bytes | None = None
            while True:
                statuses, after = await handle.completed_page(wanted, after, page, ordered=False)
                if statuses:
                    yield statuses
                if after is None:
                    break

    async def object_state(
        self, service: str | None, key: str | None
    ) -> list[tuple[int, str | None, str, str, bytes, bytes]]:
        """(partition, scope, service, object key, state name, value) of one unscoped object's, one
        service's, or (neither given) every object's state."""
        handles = [self._object_partition(service, key)] if service is not None and key is not None else self._handles
        answers = await asyncio.gather(*(handle.object_state(service, key) for handle in handles))
        return [
            (handle.id, *keys.parse_state_key(raw), value)
            for handle, answer in zip(handles, answers, strict=True)
            for raw, value in answer
        ]

    async def locks(self) -> list[tuple[int, str, str, str]]:
        """(partition, service, key, holder invocation id) of every held object lock."""
        return await self._everywhere("locks", self._local_locks, _Locks)

    async def inbox(self) -> list[tuple[int, str, str, int, str]]:
        """(partition, service, key, sequence, invocation id) of every inboxed invocation."""
        return await self._everywhere("inbox", self._local_inbox, _Inbox)

    async def promises(self) -> list[tuple[int, str, str, str, Promise]]:
        """(partition, service, key, name, promise) of every workflow promise."""
        return await self._everywhere("promises", self._local_promises, _Promises)

    async def _local_locks(self) -> list[tuple[int, str, str, str]]:
        return [(p.id, *lock) for p in self._partitions for lock in p.reads.locks()]

    async def _local_inbox(self) -> list[tuple[int, str, str, int, str]]:
        return [(p.id, *entry) for p in self._partitions for entry in p.reads.inbox()]

    async def _local_promises(self) -> list[tuple[int, str, str, str, Promise]]:
        return [(p.id, *promise) for p in self._partitions for promise in p.reads.promises(None, None)]

    async def _everywhere(self, op: str, local: Callable[[], Awaitable[list[T]]], kind: type[list[T]]) -> list[T]:
        found = await local()
        if self._node is not None:
            for answer in await self._node.gather(op, kind):
                found.extend(answer)
        return found

    async def _local_journals(self) -> list[tuple[InvocationStatus, list[JournalEntry]]]:
        return [entry for partition in self._partitions for entry in partition.reads.journals()]

    def _gather_ops(self) -> dict[str, Callable[[], Awaitable[Any]]]:
        """What peers gather from this worker for the admin API (see ``_everywhere``)."""
        return {
            "journals": self._local_journals,
            "locks": self._local_locks,
            "inbox": self._local_inbox,
            "promises": self._local_promises,
            "metrics": self._local_metrics,
            "limits": self._local_limit_usage,
            "storage": self._local_storage_failure,
        }

    def _reload_metadata(self) -> None:
        self.schema.load()
        self.dapr_apps.load()
        self.limits.load()
        if self._recovered:  # else start() sends the rules once its partitions are recovered
            # Applied at once (apply is synchronous), before the metadata owner's admin call answers.
            for partition in self._outdated_limits():
                partition.submit_detached(self._limits_command())


_Invocations = list[tuple[InvocationStatus, RetryState | None]]
_Journals = list[tuple[InvocationStatus, list[JournalEntry]]]
_Locks = list[tuple[int, str, str, str]]
_Inbox = list[tuple[int, str, str, int, str]]
_Promises = list[tuple[int, str, str, str, Promise]]
_Usage = list[LimitUsage]
_Failures = list[str]
T = TypeVar("T")


async def _index_unfinished(store: Store) -> None:
    """Data dirs written before the UNFINISHED index get it once, by one scan of every status."""
    if store.get(keys.META, keys.UNFINISHED_INDEX_KEY) is not None:
        return
    decode = msgspec.msgpack.Decoder(InvocationStatus).decode
    for key, value in store.scan(keys.STATUS, b""):
        if decode(value).phase is not Phase.COMPLETED:
            store.put(keys.UNFINISHED, key, b"")
    store.put(keys.META, keys.UNFINISHED_INDEX_KEY, b"1")
    await store.flush()


async def _index_created(store: Store) -> None:
    """Data dirs written before the CREATED index get it once, by one scan of every status."""
    if store.get(keys.META, keys.CREATED_INDEX_KEY) is not None:
        return
    decode = msgspec.msgpack.Decoder(InvocationStatus).decode
    for key, value in store.scan(keys.STATUS, b""):
        status = decode(value)
        partition, raw_id = int.from_bytes(key[:2], "big"), key[2:]
        for index_key in keys.created_keys(partition, status.target.service, status.created_at, raw_id):
            store.put(keys.CREATED, index_key, b"")
    store.put(keys.META, keys.CREATED_INDEX_KEY, b"1")
    await store.flush()


# What a partition answers about an operator's request, as Restate's admin API words it.
_REFUSALS: dict[OperatorOutcome, tuple[type[QuillError], int, str]] = {
    OperatorOutcome.NOT_FOUND: (NotFound, 404, "The requested invocation '{}' does not exist"),
    OperatorOutcome.COMPLETED: (Conflict, 409, "The invocation '{}' was already completed."),
    OperatorOutcome.RUNNING: (Conflict, 409, "The invocation '{}' is not yet completed."),
    OperatorOutcome.NOT_RUNNING: (Conflict, 409, "The invocation '{}' is not running."),
    OperatorOutcome.NOT_STARTED: (QuillError, 425, "The invocation '{}' has not started yet."),
}


def _refusal(outcome: OperatorOutcome, invocation_id: str) -> QuillError:
    kind, status, message = _REFUSALS[outcome]
    return kind(message.format(invocation_id), status=status)


def _check(outcome: OperatorOutcome, invocation_id: str) -> None:
    """Raise the admin error for a refused operation; other outcomes pass."""
    if outcome in _REFUSALS:
        raise _refusal(outcome, invocation_id)


def _parse_id(invocation_id: str) -> InvocationId:
    try:
        return InvocationId.parse(invocation_id)
    except InvalidInvocationId as exc:
        raise BadRequest(f"The request field 'invocation_id' is invalid. Reason: {exc.reason}") from exc

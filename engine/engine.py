"""The engine's public face: what ingress and admin may ask of it.

Requests are routed to the partition that owns their partition key; everything else (storage,
partitions, invoker, timers, schema) stays behind this class.
"""

from __future__ import annotations

import asyncio
import logging

import httpx
import msgspec

from engine import keys
from engine.config import Config
from engine.errors import BadRequest
from engine.ids import InvocationId, hashed_partition_key, random_partition_key
from engine.invoker import Invoker
from engine.processor import Partition
from engine.protocol import service_protocol_pb2 as pb
from engine.records import Completion, Invoke, Target, TimerFired
from engine.schema import Schema
from engine.store import Store
from engine.timers import TimerService

log = logging.getLogger(__name__)


class InvocationRequest(msgspec.Struct, kw_only=True):
    target: Target
    body: bytes
    headers: list[tuple[str, str]]
    execution_time: int | None = None  # ms since epoch, for delayed sends


class Engine:
    def __init__(self, config: Config) -> None:
        self.config = config
        self._store: Store | None = None
        self._partitions: list[Partition] = []
        self._client: httpx.AsyncClient | None = None
        self._timers = TimerService()
        self.schema: Schema
        self.invoker: Invoker

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        store = self._store = Store(self.config.data_path)
        store.start()
        count = self._partition_count(store)
        # Discovery and other control-plane calls; invocations use the invoker's own pool.
        self._client = httpx.AsyncClient(timeout=httpx.Timeout(30.0, connect=10.0))
        self.schema = Schema(store, self.config.cluster_name)
        self.schema.load()
        self.invoker = Invoker(self.config, self.schema)
        self._partitions = [Partition(p, store, self, self.config.log_retained_entries) for p in range(count)]
        for partition in self._partitions:
            partition.recover()
        recovered = sum(p.active_count for p in self._partitions)
        if recovered:
            log.info("recovered %d unfinished invocations", recovered)

    async def stop(self) -> None:
        self._timers.close()
        if self._partitions:
            await self.invoker.stop()
        if self._client is not None:
            await self._client.aclose()
        if self._store is not None:
            await self._store.close()

    @property
    def http_client(self) -> httpx.AsyncClient:
        assert self._client is not None
        return self._client

    # -- invocations -------------------------------------------------------------------------
    async def send(self, request: InvocationRequest) -> InvocationId:
        """Accept a one-way invocation; returns once it is durable."""
        invocation_id, partition = self._place(request.target)
        await partition.submit(self._invoke_command(invocation_id, request))
        return invocation_id

    async def call(self, request: InvocationRequest) -> tuple[InvocationId, Completion]:
        """Invoke and wait for the result."""
        invocation_id, partition = self._place(request.target)
        waiter = partition.wait_for_completion(invocation_id)
        try:
            await partition.submit(self._invoke_command(invocation_id, request))
            return invocation_id, await waiter
        finally:
            partition.forget_waiter(invocation_id, waiter)

    def _place(self, target: Target) -> tuple[InvocationId, Partition]:
        key = hashed_partition_key(target.service, target.key) if target.key else random_partition_key()
        invocation_id = InvocationId.new(key)
        return invocation_id, self._partitions[key % len(self._partitions)]

    @staticmethod
    def _invoke_command(invocation_id: InvocationId, request: InvocationRequest) -> Invoke:
        entry = pb.InputCommandMessage(
            headers=[pb.Header(key=k, value=v) for k, v in request.headers],
            value=pb.Value(content=request.body),
        )
        return Invoke(
            invocation_id=str(invocation_id),
            target=request.target,
            input_entry=entry.SerializeToString(),
            execution_time=request.execution_time,
        )

    # -- runtime callbacks from partitions (see processor.Runtime) ---------------------------
    def start_attempt(self, partition: Partition, invocation_id: str, attempt: int) -> None:
        self.invoker.start(partition, invocation_id, attempt)

    def arm_timer(self, partition: Partition, invocation_id: str, fire_at: int) -> None:
        self._timers.schedule(fire_at, lambda: partition.submit(TimerFired(invocation_id, fire_at)))

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

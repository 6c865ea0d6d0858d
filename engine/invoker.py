"""The invoker: runs invocation attempts against deployments over HTTP.

One attempt = one ``POST {deployment}/invoke/{service}/{handler}`` in request/response mode:
quill writes ``StartMessage`` + the stored journal and closes its side; the SDK answers with the
new commands and exactly one of End, Suspension or Error. Everything the attempt produced goes to
the partition as a single ``AttemptOutcome`` command. Failed attempts are retried with the retry
policy of the handler, the service or the server (exponential backoff), tracked in memory as the
real Restate invoker does: after a restart every running invocation simply starts a new attempt.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from dataclasses import dataclass, field

import aiohttp

from engine.manifest import EndpointManifest
from engine.processor import AttemptSnapshot, JournalEntry, Partition
from engine.protocol import service_protocol_pb2 as pb
from engine.protocol.codec import FrameDecoder, MessageType, ProtocolError, content_type, encode_message, encode_raw
from engine.records import AttemptOutcome, Deployment, InvocationStatus
from engine.schema import Schema
from engine.config import Config, RetryPolicy

log = logging.getLogger(__name__)


@dataclass
class RetryState:
    count: int = 0  # failed attempts since the journal last grew
    last_stored_at: float = field(default_factory=time.monotonic)
    last_failure: str | None = None
    paused: bool = False


@dataclass
class AttemptResult:
    entries: list[JournalEntry]
    ending: str  # end | suspend | error | incomplete
    awaiting_completions: list[int] = field(default_factory=list)
    awaiting_signals: list[int] = field(default_factory=list)
    awaiting_signal_names: list[str] = field(default_factory=list)
    failure: str | None = None
    retry_after: float | None = None


class Invoker:
    def __init__(self, config: Config, schema: Schema) -> None:
        self._config = config
        self._schema = schema
        # aiohttp rather than httpx on this path: measured at 32 concurrent keep-alive connections,
        # httpx's pool spent ~3 ms of CPU per request scanning its connections, aiohttp ~0.15 ms.
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=config.concurrent_invocations, limit_per_host=0, keepalive_timeout=30),
            timeout=aiohttp.ClientTimeout(total=config.abort_timeout, connect=10.0),
            auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept-Encoding"),
        )
        self._slots = asyncio.Semaphore(config.concurrent_invocations)
        self._tasks: set[asyncio.Task[None]] = set()
        self._retry_timers: dict[str, asyncio.TimerHandle] = {}
        self.retries: dict[str, RetryState] = {}

    def start(self, partition: Partition, invocation_id: str, attempt: int) -> None:
        timer = self._retry_timers.pop(invocation_id, None)
        if timer is not None:
            timer.cancel()
        task = asyncio.get_running_loop().create_task(self._attempt(partition, invocation_id, attempt))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        for timer in self._retry_timers.values():
            timer.cancel()
        self._retry_timers.clear()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._session.close()

    # -- one attempt -------------------------------------------------------------------------
    async def _attempt(self, partition: Partition, invocation_id: str, attempt: int) -> None:
        async with self._slots:
            snapshot = partition.snapshot(invocation_id, attempt)
            if snapshot is None:
                return
            status = snapshot.status
            deployment = self._schema.deployment_for(status.target.service, status.deployment_id)
            if deployment is None:
                result = AttemptResult([], "error", failure=f"no deployment serves {status.target.service}")
            else:
                result = await self._call(deployment, snapshot)
            accepted = await partition.submit(
                AttemptOutcome(
                    invocation_id=invocation_id,
                    attempt=attempt,
                    deployment_id=deployment.id if deployment else "",
                    entries=result.entries,
                    ending=result.ending,
                    awaiting_completions=result.awaiting_completions,
                    awaiting_signals=result.awaiting_signals,
                    awaiting_signal_names=result.awaiting_signal_names,
                )
            )
        if not accepted:
            return
        if result.ending in ("end", "suspend"):
            self.retries.pop(invocation_id, None)
        else:
            self._schedule_retry(partition, invocation_id, attempt, status, result)

    async def _call(self, deployment: Deployment, snapshot: AttemptSnapshot) -> AttemptResult:
        version = deployment.protocol_version
        status, journal = snapshot.status, snapshot.journal
        retry = self.retries.get(status.id)
        eager = snapshot.state is not None and not self._lazy_state(status)
        start = pb.StartMessage(
            id=snapshot.raw_id,
            debug_id=status.id,
            known_entries=len(journal),
            state_map=[pb.StartMessage.StateEntry(key=k, value=v) for k, v in snapshot.state or ()] if eager else (),
            partial_state=not eager,
            key=status.target.key,
            retry_count_since_last_stored_entry=retry.count if retry else 0,
            duration_since_last_stored_entry=int((time.monotonic() - retry.last_stored_at) * 1000) if retry else 0,
        )
        if version >= 6:
            start.random_seed = _random_seed(snapshot.raw_id)
        body = b"".join([encode_message(start), *(encode_raw(t, p) for t, p in journal)])
        media_type = content_type(version)
        headers = {
            "content-type": media_type,
            "accept": media_type,
            "x-restate-invocation-id": status.id,
            "x-restate-cluster-name": self._config.cluster_name,
            **deployment.additional_headers,
        }
        if status.target.key:
            headers["x-restate-service-key"] = status.target.key
        url = f"{deployment.uri.rstrip('/')}/invoke/{status.target.service}/{status.target.handler}"
        try:
            async with self._session.post(url, data=body, headers=headers) as response:
                content = await response.read()
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            return AttemptResult([], "error", failure=f"cannot reach {url}: {exc!r}")
        if response.status != 200:
            retry_after = response.headers.get("retry-after")
            return AttemptResult(
                [],
                "error",
                failure=f"unexpected status {response.status} from {url}: {content[:200]!r}",
                retry_after=float(retry_after) if retry_after and retry_after.isdigit() else None,
            )
        if response.headers.get("content-type") != media_type:
            return AttemptResult(
                [], "error", failure=f"unexpected content-type {response.headers.get('content-type')!r} from {url}"
            )
        return _read_messages(content)

    def _schedule_retry(
        self, partition: Partition, invocation_id: str, attempt: int, status: InvocationStatus, result: AttemptResult
    ) -> None:
        retry = self.retries.setdefault(invocation_id, RetryState())
        if result.entries:
            retry.count, retry.last_stored_at = 0, time.monotonic()
        retry.count += 1
        retry.last_failure = result.failure
        policy = self._retry_policy(status)
        if policy.max_attempts is not None and retry.count >= policy.max_attempts:
            retry.paused = True
            log.warning("invocation %s paused after %d attempts: %s", invocation_id, retry.count, result.failure)
            return
        delay = result.retry_after if result.retry_after is not None else policy.delay(retry.count)
        # Journal mismatches and protocol violations mean the code no longer matches its journal:
        # retries will not fix that without a deployment change, so make them loud.
        level = logging.WARNING if result.failure and result.failure.startswith(("[570]", "[571]")) else logging.INFO
        log.log(level, "invocation %s attempt failed (%s), retrying in %.3fs", invocation_id, result.failure, delay)
        self._retry_timers[invocation_id] = asyncio.get_running_loop().call_later(
            delay, self.start, partition, invocation_id, attempt
        )

    def _lazy_state(self, status: InvocationStatus) -> bool:
        entry = self._schema.services.get(status.target.service)
        if entry is None:
            return False
        handler = entry.manifest.handler(status.target.handler)
        if handler is not None and handler.enable_lazy_state is not None:
            return handler.enable_lazy_state
        return bool(entry.manifest.enable_lazy_state)

    def _retry_policy(self, status: InvocationStatus) -> RetryPolicy:
        default = self._config.retry_policy
        entry = self._schema.services.get(status.target.service)
        if entry is None:
            return default
        handler = entry.manifest.handler(status.target.handler)
        layers = [entry.manifest, handler] if handler is not None else [entry.manifest]
        values = {
            "initial_interval": default.initial_interval,
            "max_interval": default.max_interval,
            "max_attempts": default.max_attempts,
            "exponentiation_factor": default.exponentiation_factor,
            "on_max_attempts": default.on_max_attempts,
        }
        for layer in layers:
            if layer.retry_policy_initial_interval is not None:
                values["initial_interval"] = layer.retry_policy_initial_interval / 1000
            if layer.retry_policy_max_interval is not None:
                values["max_interval"] = layer.retry_policy_max_interval / 1000
            if layer.retry_policy_max_attempts is not None:
                values["max_attempts"] = layer.retry_policy_max_attempts
            if layer.retry_policy_exponentiation_factor is not None:
                values["exponentiation_factor"] = layer.retry_policy_exponentiation_factor
            if layer.retry_policy_on_max_attempts is not None:
                values["on_max_attempts"] = layer.retry_policy_on_max_attempts.lower()
        return RetryPolicy(**values)  # type: ignore[arg-type]


def _random_seed(raw_id: bytes) -> int:
    # Stable across attempts and restarts, as the SDKs expect for deterministic randomness.
    return int.from_bytes(hashlib.blake2b(raw_id, digest_size=8).digest(), "big")


def _read_messages(data: bytes) -> AttemptResult:
    """Turn the SDK's response into journal entries and an ending."""
    decoder = FrameDecoder()
    entries: list[JournalEntry] = []
    try:
        frames = decoder.feed(data)
    except ProtocolError as exc:
        return AttemptResult([], "error", failure=f"protocol violation: {exc}")
    for frame in frames:
        kind = frame.type
        if kind == MessageType.PROPOSE_RUN_COMPLETION:
            # A run proposal is journaled as the notification the SDK will replay.
            proposal = pb.ProposeRunCompletionMessage.FromString(frame.payload)
            notification = pb.RunCompletionNotificationMessage(completion_id=proposal.result_completion_id)
            if proposal.HasField("failure"):
                notification.failure.CopyFrom(proposal.failure)
            else:
                notification.value.content = proposal.value
            entries.append((MessageType.RUN_COMPLETION, notification.SerializeToString()))
        elif kind >= 0x0400:
            entries.append((kind, frame.payload))
        elif kind == MessageType.END:
            return AttemptResult(entries, "end")
        elif kind == MessageType.SUSPENSION:
            suspension = pb.SuspensionMessage.FromString(frame.payload)
            completions, signals, names = _flatten_awaited(suspension)
            return AttemptResult(entries, "suspend", completions, signals, names)
        elif kind == MessageType.ERROR:
            error = pb.ErrorMessage.FromString(frame.payload)
            delay = error.next_retry_delay / 1000 if error.HasField("next_retry_delay") else None
            return AttemptResult(entries, "error", failure=f"[{error.code}] {error.message}", retry_after=delay)
        # AwaitingOn and acks are hints that need no answer in request/response mode.
    return AttemptResult(entries, "incomplete", failure="the SDK closed the stream without End, Suspension or Error")


def _flatten_awaited(message: pb.SuspensionMessage) -> tuple[list[int], list[int], list[str]]:
    """Every notification the suspension names; any one of them may unblock the SDK."""
    completions = list(message.waiting_completions)
    signals = list(message.waiting_signals)
    names = list(message.waiting_named_signals)
    pending = [message.awaiting_on] if message.HasField("awaiting_on") else []
    while pending:
        future = pending.pop()
        completions.extend(future.waiting_completions)
        signals.extend(future.waiting_signals)
        names.extend(future.waiting_named_signals)
        pending.extend(future.nested_futures)
    return completions, signals, names

"""The invoker: runs invocation attempts against deployments over HTTP.

One attempt = one ``POST {deployment}/invoke/{service}/{handler}`` in request/response mode:
quill writes ``StartMessage`` + the stored journal and closes its side; the SDK answers with the
new commands and exactly one of End, Suspension or Error. Everything the attempt produced goes to
the partition as a single ``AttemptOutcome`` command. Failed attempts are retried with the retry
policy of the handler, the service or the server (exponential backoff), tracked in memory as the
real Restate invoker does: after a restart every running invocation simply starts a new attempt.
When the retries run out the invocation is paused (``on_max_attempts = pause``) or ends with the
last failure as its output (``kill``, as Restate's ``on-max-attempts = "kill"``).

Each attempt runs in its own task, bound to its invocation for logging (every record it logs
carries the invocation id), measured for metrics and, with tracing on, spanned.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from dataclasses import dataclass, field

import aiohttp

from engine.config import Config, RetryPolicy
from engine.dapr.actors import call_actor, is_actor
from engine.dapr.apps import DaprApps
from engine.invoker.attempt import AttemptResult, MessageReader, read_messages
from engine.invoker.bidi import BidiAttempt
from engine.invoker.http2 import Http2Error, Http2Pool, StreamRefused
from engine.invoker.observed import ObservedAttempt
from engine.partition.processor import AttemptSnapshot, Partition
from engine.protocol import service_protocol_pb2 as pb
from engine.protocol.codec import MessageType, content_type, encode_message, encode_raw
from engine.records import AttemptOutcome, Deployment, Failure, InvocationStatus, Pause
from engine.schema.registry import Schema
from engine.telemetry.logs import bind_invocation
from engine.telemetry.metrics import Metrics, RetryAction
from engine.telemetry.traces import Tracer

log = logging.getLogger(__name__)


@dataclass
class RetryState:
    count: int = 0  # failed attempts since the journal last grew
    last_stored_at: float = field(default_factory=time.monotonic)
    last_failure: str | None = None
    paused: bool = False


class Invoker:
    def __init__(
        self,
        config: Config,
        schema: Schema,
        http2: Http2Pool,
        dapr_apps: DaprApps,
        metrics: Metrics,
        tracer: Tracer | None = None,
    ) -> None:
        self._config = config
        self._metrics = metrics
        self._tracer = tracer
        self._schema = schema
        self._dapr_apps = dapr_apps
        # aiohttp rather than httpx on this path: measured at 32 concurrent keep-alive connections,
        # httpx's pool spent ~3 ms of CPU per request scanning its connections, aiohttp ~0.15 ms.
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=config.concurrent_invocations, limit_per_host=0, keepalive_timeout=30),
            timeout=aiohttp.ClientTimeout(total=config.abort_timeout, connect=10.0),
            auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept-Encoding"),
        )
        self._http2 = http2
        self._slots = asyncio.Semaphore(config.concurrent_invocations)
        self._tasks: set[asyncio.Task[None]] = set()
        self._retry_timers: dict[str, asyncio.TimerHandle] = {}
        self.retries: dict[str, RetryState] = {}

    def start(self, partition: Partition, invocation_id: str, attempt: int) -> None:
        timer = self._retry_timers.pop(invocation_id, None)
        if timer is not None:
            timer.cancel()
        self._metrics.attempt_enqueued(partition.id)
        task = asyncio.get_running_loop().create_task(self._attempt(partition, invocation_id, attempt))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def reset_retries(self, invocation_id: str) -> None:
        self.retries.pop(invocation_id, None)

    @property
    def load(self) -> tuple[int, int]:
        """(attempts running or waiting for a slot, invocations waiting for a retry)."""
        return len(self._tasks), len(self._retry_timers)

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
            bind_invocation(status.id, status.target, partition.id)
            trace = self._tracer.start_attempt(status, snapshot.journal, attempt) if self._tracer else None
            observed = ObservedAttempt(self._metrics, trace, partition.id, status.target.service)
            deployment = self._schema.deployment_for(status.target.service, status.deployment_id)
            if is_actor(status.target):
                result = await call_actor(self._dapr_apps, status, snapshot.journal[0][1])
            elif deployment is None:
                result = AttemptResult([], "error", failure=f"no deployment serves {status.target.service}")
            else:
                result = await self._call(partition, attempt, deployment, snapshot, observed)
            if result.ending == "stale":
                observed.finished(result, accepted=False)
                return
            deployment_id = deployment.id if deployment else ""
            accepted = await self._submit(partition, invocation_id, attempt, deployment_id, result, observed)
        if not accepted:
            return
        if result.ending in ("end", "suspend"):
            self.retries.pop(invocation_id, None)
        elif self._schedule_retry(partition, invocation_id, attempt, status, result) is RetryAction.KILL:
            await self._kill(partition, status, attempt, deployment_id, result)

    async def _kill(
        self, partition: Partition, status: InvocationStatus, attempt: int, deployment_id: str, result: AttemptResult
    ) -> None:
        """Retries ran out and the policy says kill: the last failure becomes the invocation's output."""
        failure = _failure_of(result)
        output = pb.OutputCommandMessage(failure=pb.Failure(code=failure.code, message=failure.message))
        ending = AttemptResult([(MessageType.OUTPUT_COMMAND, output.SerializeToString())], "end")
        if await self._metrics.timed(partition.submit, _outcome(status.id, attempt, deployment_id, ending)):
            self._metrics.invocation_completed(partition.id, status.target.service, success=False)
            if self._tracer is not None:
                self._tracer.invocation_ended(status, f"[{failure.code}] {failure.message}")

    async def _submit(
        self,
        partition: Partition,
        invocation_id: str,
        attempt: int,
        deployment_id: str,
        result: AttemptResult,
        observed: ObservedAttempt,
    ) -> bool:
        """Hand the attempt's outcome to the partition; False if the attempt was stale."""
        outcome = _outcome(invocation_id, attempt, deployment_id, result)
        accepted = bool(await self._metrics.timed(partition.submit, outcome))
        if accepted:
            observed.journaled(result.entries)
        observed.finished(result, accepted)
        return accepted

    async def _call(
        self,
        partition: Partition,
        attempt: int,
        deployment: Deployment,
        snapshot: AttemptSnapshot,
        observed: ObservedAttempt,
    ) -> AttemptResult:
        version = deployment.protocol_version
        status = snapshot.status
        body = self._start_and_journal(snapshot, version)
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
        if observed.trace is not None:
            headers.update(observed.trace.headers)
        url = f"{deployment.uri.rstrip('/')}/invoke/{status.target.service}/{status.target.handler}"
        if deployment.use_http_11:
            return await self._request_response_http11(url, headers, body, media_type)
        inactivity, abort = self._timeouts(status)
        for _ in range(3):
            # A stream the deployment refused unprocessed (GOAWAY after its per-connection request
            # limit, say) is retried at once on a fresh connection, not after the retry backoff.
            try:
                connection, stream = await self._http2.open_stream(url, list(headers.items()))
            except StreamRefused:
                continue
            except Http2Error as exc:
                return AttemptResult([], "error", failure=f"cannot reach {url}: {exc}")
            reader = MessageReader()
            if deployment.protocol_mode == "REQUEST_RESPONSE" or inactivity == 0:
                # Request/response over HTTP/2: write everything, close our side, read the answer.
                result = await BidiAttempt.request_response(connection, stream, body, media_type, reader, abort)
            else:
                bidi = BidiAttempt(
                    partition,
                    status.id,
                    attempt,
                    deployment.id,
                    version,
                    inactivity,
                    abort,
                    self._metrics,
                    observed.journaled,
                )
                result = await bidi.run(connection, stream, body, media_type, reader)
            if result.ending != "refused":
                return result
        return AttemptResult([], "error", failure=f"{url} refused the stream three times")

    def _start_and_journal(self, snapshot: AttemptSnapshot, version: int) -> bytes:
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
        return b"".join([encode_message(start), *(encode_raw(t, p) for t, p in journal)])

    async def _request_response_http11(
        self, url: str, headers: dict[str, str], body: bytes, media_type: str
    ) -> AttemptResult:
        try:
            async with self._session.post(url, data=body, headers=headers) as response:
                content = await response.read()
        except (TimeoutError, aiohttp.ClientError) as exc:
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
        return read_messages(content)

    def _timeouts(self, status: InvocationStatus) -> tuple[float, float]:
        """(inactivity, abort) in seconds: handler, then service, then server default."""
        inactivity, abort = self._config.inactivity_timeout, self._config.abort_timeout
        entry = self._schema.services.get(status.target.service)
        if entry is not None:
            handler = entry.manifest.handler(status.target.handler)
            for layer in (entry.manifest, handler):
                if layer is None:
                    continue
                if layer.inactivity_timeout is not None:
                    inactivity = layer.inactivity_timeout / 1000
                if layer.abort_timeout is not None:
                    abort = layer.abort_timeout / 1000
        override = self._schema.overrides.get(status.target.service)
        if override is not None:
            # An operator's PATCH /services/{name} wins over the manifest.
            if override.inactivity_timeout is not None:
                inactivity = override.inactivity_timeout / 1000
            if override.abort_timeout is not None:
                abort = override.abort_timeout / 1000
        return inactivity, abort

    def _schedule_retry(
        self, partition: Partition, invocation_id: str, attempt: int, status: InvocationStatus, result: AttemptResult
    ) -> RetryAction:
        retry = self.retries.setdefault(invocation_id, RetryState())
        if result.entries:
            retry.count, retry.last_stored_at = 0, time.monotonic()
        retry.count += 1
        retry.last_failure = result.failure
        policy = self._retry_policy(status)
        service = status.target.service
        if policy.max_attempts is not None and retry.count >= policy.max_attempts:
            if policy.on_max_attempts == "kill":
                self._metrics.retry(service, RetryAction.KILL)
                self.retries.pop(invocation_id, None)
                log.warning("invocation %s killed after %d attempts: %s", invocation_id, retry.count, result.failure)
                return RetryAction.KILL
            self._metrics.retry(service, RetryAction.PAUSE)
            retry.paused = True
            log.warning("invocation %s paused after %d attempts: %s", invocation_id, retry.count, result.failure)
            # Durably: it stays paused across restarts until an operator resumes (or kills) it.
            partition.submit_detached(Pause(invocation_id))
            return RetryAction.PAUSE
        self._metrics.retry(service, RetryAction.RETRY)
        delay = result.retry_after if result.retry_after is not None else policy.delay(retry.count)
        # Journal mismatches and protocol violations mean the code no longer matches its journal:
        # retries will not fix that without a deployment change, so make them loud.
        level = logging.WARNING if result.failure and result.failure.startswith(("[570]", "[571]")) else logging.INFO
        log.log(level, "invocation %s attempt failed (%s), retrying in %.3fs", invocation_id, result.failure, delay)
        self._retry_timers[invocation_id] = asyncio.get_running_loop().call_later(
            delay, self.start, partition, invocation_id, attempt
        )
        return RetryAction.RETRY

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


def _outcome(invocation_id: str, attempt: int, deployment_id: str, result: AttemptResult) -> AttemptOutcome:
    return AttemptOutcome(
        invocation_id=invocation_id,
        attempt=attempt,
        deployment_id=deployment_id,
        entries=result.entries,
        ending=result.ending,
        awaiting_completions=result.awaiting_completions,
        awaiting_signals=result.awaiting_signals,
        awaiting_signal_names=result.awaiting_signal_names,
    )


def _failure_of(result: AttemptResult) -> Failure:
    """What a killed invocation answers: the SDK's error, or the transport failure as a 500."""
    if result.error is not None:
        return result.error
    return Failure(500, result.failure or "the attempt failed")


def _random_seed(raw_id: bytes) -> int:
    # Stable across attempts and restarts, as the SDKs expect for deterministic randomness.
    return int.from_bytes(hashlib.blake2b(raw_id, digest_size=8).digest(), "big")

"""The invoker: runs invocation attempts against deployments over HTTP.

One attempt = one ``POST {deployment}/invoke/{service}/{handler}`` in request/response mode:
quill writes ``StartMessage`` + the stored journal and closes its side; the SDK answers with the
new commands and exactly one of End, Suspension or Error. Everything the attempt produced goes to
the partition as a single ``AttemptOutcome`` command. Failed attempts are retried with the retry
policy of the handler, the service or the server (exponential backoff), tracked in memory as the
real Restate invoker does: after a restart every running invocation simply starts a new attempt.

A shutdown drains rather than cancels: no new attempt starts (the invocations stay durably
running, and recovery starts them after the restart), attempts in flight finish their current
step (a request/response attempt until its answer is journaled; a bidi attempt closes its side at
once, as after the inactivity timeout, so the SDK suspends after the step it is in), and only what
is still running after the shutdown timeout is cancelled. Cancelling an attempt mid-step would
throw away a ``ctx.run`` result the SDK already computed, and the step would run again.
When the retries run out the invocation is paused (``on_max_attempts = pause``) or ends with the
last failure as its output (``kill``: Restate 1.7 answers the caller that failure, code and
message, not a "killed").

Each attempt runs in its own task, bound to its invocation for logging (every record it logs
carries the invocation id), measured for metrics and, with tracing on, spanned.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable

from engine.config import Config
from engine.dapr.actors import call_actor
from engine.dapr.apps import DaprApps
from engine.dapr.targets import ACTOR_PREFIX, DEACTIVATE, is_actor
from engine.errors import QuillError, Unavailable
from engine.invoker.attempt import (
    AttemptResult,
    Interrupted,
    MessageReader,
    called_targets,
    read_messages,
    refused_answer,
)
from engine.invoker.bidi import BidiAttempt
from engine.invoker.http2 import Http2Error, Http2Pool, StreamRefused
from engine.invoker.http11 import Http11Client, HttpError
from engine.invoker.identity import RequestSigner, invoke_path
from engine.invoker.observed import ObservedAttempt
from engine.invoker.retry import RetryState, Verdict, after_failure
from engine.partition.commands import AttemptEnding, AttemptOutcome, InvocationSettings, Pause
from engine.partition.processor import Partition
from engine.partition.types import AttemptSnapshot, JournalEntry
from engine.protocol import service_protocol_pb2 as pb
from engine.protocol.codec import MessageType, content_type, encode_message, frame_header
from engine.records import Deployment, Failure, InvocationStatus
from engine.schema.registry import Schema
from engine.telemetry.logs import bind_invocation
from engine.telemetry.metrics import Metrics, RetryAction
from engine.telemetry.traces import Tracer

log = logging.getLogger(__name__)


class Invoker:
    def __init__(
        self,
        config: Config,
        schema: Schema,
        http2: Http2Pool,
        dapr_apps: DaprApps,
        actor_turn: Callable[[str, str], None],
        signer: RequestSigner | None,
        metrics: Metrics,
        tracer: Tracer | None = None,
    ) -> None:
        self._config = config
        self._metrics = metrics
        self._tracer = tracer
        self._schema = schema
        self._dapr_apps = dapr_apps
        self._actor_turn = actor_turn  # a Dapr actor (type, id) took a turn: idle tracking
        # Measured at 32 concurrent keep-alive connections: httpx's pool spent ~3 ms of CPU per
        # request, aiohttp ~0.15 ms (a fifth of the no-op path), this client a fraction of that.
        self._http11 = Http11Client()
        self._signer = signer
        self._http2 = http2
        self._slots = asyncio.Semaphore(config.concurrent_invocations)
        self._tasks: set[asyncio.Task[None]] = set()
        self._retry_timers: dict[str, asyncio.TimerHandle] = {}
        self.retries: dict[str, RetryState] = {}
        self._draining = asyncio.Event()  # set at shutdown: bidi attempts close their side
        self._abandoned = asyncio.Event()  # set by a second signal: stop waiting for attempts

    def start(self, partition: Partition, invocation_id: str, attempt: int) -> None:
        timer = self._retry_timers.pop(invocation_id, None)
        if timer is not None:
            timer.cancel()
        if self._draining.is_set():
            return  # durably running: recovery starts it after the restart
        self._metrics.attempt_enqueued(partition.id)
        task = asyncio.get_running_loop().create_task(self._attempt(partition, invocation_id, attempt))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def reset_retries(self, invocation_id: str, paused: bool) -> None:
        """A fresh retry budget for a paused invocation that is resumed (``paused``: by an operator;
        or paused because its retries ran out, durably or not yet), before the resume is applied:
        the resumed attempt may fail before anything else runs here. A running one keeps its own."""
        retry = self.retries.get(invocation_id)
        if retry is not None and (paused or retry.paused):
            del self.retries[invocation_id]

    async def drain(self, timeout: float) -> None:
        """Start no new attempt; wait up to ``timeout`` for those in flight to finish their step."""
        self._draining.set()
        for timer in self._retry_timers.values():
            timer.cancel()
        self._retry_timers.clear()
        if not self._tasks or timeout <= 0:
            return
        log.info("waiting for %d attempts in flight to finish their current step", len(self._tasks))
        finished = asyncio.ensure_future(asyncio.wait(set(self._tasks), timeout=timeout))
        abandoned = asyncio.ensure_future(self._abandoned.wait())
        await asyncio.wait({finished, abandoned}, return_when=asyncio.FIRST_COMPLETED)
        for waiting in (finished, abandoned):
            waiting.cancel()
        if self._tasks:
            log.warning(
                "%d attempts did not finish within the shutdown timeout; they start again after the restart",
                len(self._tasks),
            )

    def abandon_drain(self) -> None:
        self._abandoned.set()

    @property
    def load(self) -> tuple[int, int]:
        """(attempts running or waiting for a slot, invocations waiting for a retry)."""
        return len(self._tasks), len(self._retry_timers)

    async def stop(self) -> None:
        self._draining.set()
        for timer in self._retry_timers.values():
            timer.cancel()
        self._retry_timers.clear()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._http11.close()

    # -- one attempt -------------------------------------------------------------------------
    async def _attempt(self, partition: Partition, invocation_id: str, attempt: int) -> None:
        try:
            await self._run_attempt(partition, invocation_id, attempt)
        except Unavailable as exc:
            # A write failed (a full disk): what the attempt produced stays staged and becomes
            # durable once the store's retry succeeds. Retry the attempt like any failure; if the
            # partition moved on meanwhile, the retry finds its snapshot stale and does nothing.
            snapshot = partition.reads.snapshot(invocation_id, attempt)
            if snapshot is not None:
                failed = AttemptResult([], AttemptEnding.ERROR, failure=str(exc))
                self._schedule_retry(partition, invocation_id, attempt, snapshot.status, failed)

    async def _run_attempt(self, partition: Partition, invocation_id: str, attempt: int) -> None:
        async with self._slots:
            if self._draining.is_set():
                return  # queued behind the concurrency limit when the shutdown began
            snapshot = partition.reads.snapshot(invocation_id, attempt)
            if snapshot is None:
                return
            status = snapshot.status
            bind_invocation(status.id, status.target, partition.id)
            trace = self._tracer.start_attempt(status, snapshot.journal, attempt) if self._tracer else None
            observed = ObservedAttempt(self._metrics, trace, partition.id)
            deployment = self._schema.deployment_for(status.target.service, status.deployment_id)
            try:
                result = await self._run(partition, attempt, deployment, snapshot, observed)
            except Exception as exc:  # noqa: BLE001 - a bug here must fail the attempt, not the invocation
                log.exception("attempt %d of invocation %s failed inside quill", attempt, invocation_id)
                result = AttemptResult([], AttemptEnding.ERROR, failure=f"internal error in quill's invoker: {exc!r}")
            if isinstance(result.ending, Interrupted):
                observed.finished(result, accepted=False)
                return  # stale (refusals were retried in _call)
            deployment_id = deployment.id if deployment else ""
            try:
                accepted = await self._submit(partition, invocation_id, attempt, deployment_id, result, observed)
            except QuillError as exc:
                # The partition stopped (logged there) or storage refuses writes: recovery retries it.
                log.warning("the outcome of attempt %d of %s was not journaled: %s", attempt, invocation_id, exc)
                return
        if not accepted:
            return
        if result.ending in (AttemptEnding.END, AttemptEnding.SUSPEND):
            self.retries.pop(invocation_id, None)
        elif self._schedule_retry(partition, invocation_id, attempt, status, result) is Verdict.KILL:
            await self._kill(partition, status, attempt, deployment_id, result)

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
        assert not isinstance(result.ending, Interrupted)
        outcome = AttemptOutcome(
            invocation_id=invocation_id,
            attempt=attempt,
            deployment_id=deployment_id,
            entries=result.entries,
            ending=result.ending,
            awaiting_completions=result.awaiting_completions,
            awaiting_signals=result.awaiting_signals,
            awaiting_signal_names=result.awaiting_signal_names,
            targets=self.called_targets(result.entries),
        )
        accepted = bool(await self._metrics.timed(partition.submit, outcome))
        if accepted:
            observed.journaled(result.entries)
        observed.finished(result, accepted)
        return accepted

    async def _kill(
        self, partition: Partition, status: InvocationStatus, attempt: int, deployment_id: str, result: AttemptResult
    ) -> None:
        """Retries ran out and the policy says kill: the last failure becomes the invocation's
        output, so its caller gets that failure (as from Restate 1.7), through the outcome an
        attempt that returned it would have produced."""
        failure = result.error or Failure(500, result.failure or "the attempt failed")
        output = pb.OutputCommandMessage(failure=pb.Failure(code=failure.code, message=failure.message))
        ending = _outcome(status.id, attempt, deployment_id, [(MessageType.OUTPUT_COMMAND, output.SerializeToString())])
        if await self._metrics.timed(partition.submit, ending) and self._tracer is not None:
            self._tracer.invocation_ended(status, f"[{failure.code}] {failure.message}")

    async def _run(
        self,
        partition: Partition,
        attempt: int,
        deployment: Deployment | None,
        snapshot: AttemptSnapshot,
        observed: ObservedAttempt,
    ) -> AttemptResult:
        status = snapshot.status
        if is_actor(status.target):
            result = await call_actor(self._dapr_apps, status, snapshot.journal[0][1])
            if status.target.handler != DEACTIVATE:
                self._actor_turn(status.target.service[len(ACTOR_PREFIX) :], status.target.key)
            return result
        if deployment is None:
            return AttemptResult([], AttemptEnding.ERROR, failure=f"no deployment serves {status.target.service}")
        return await self._call(partition, attempt, deployment, snapshot, observed)

    def called_targets(self, entries: list[tuple[int, bytes]]) -> dict[str, InvocationSettings]:
        return called_targets(entries, self._invocation_settings)

    def _invocation_settings(self, service: str, handler: str) -> InvocationSettings | None:
        settings = self._schema.settings(service, handler)
        return None if settings is None else settings.invocation

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
        if status.target.object_key is not None:
            headers["x-restate-service-key"] = status.target.key
        path = invoke_path(status.target.service, status.target.handler)
        if self._signer is not None:
            # Signed per attempt, as Restate signs every request (a retry gets a fresh token).
            headers.update(self._signer.headers(path, status.target.object_key))
        url = deployment.uri.rstrip("/") + path
        if observed.trace is not None:
            headers.update(observed.trace.headers)
        inactivity, abort = self._timeouts(status)
        if deployment.use_http_11:
            return await self._request_response_http11(url, headers, body, media_type, abort)
        for _ in range(3):
            # A stream the deployment refused unprocessed (GOAWAY after its per-connection request
            # limit, say) is retried at once on a fresh connection, not after the retry backoff.
            try:
                connection, stream = await self._http2.open_stream(url, list(headers.items()))
            except StreamRefused:
                continue
            except Http2Error as exc:
                return AttemptResult([], AttemptEnding.ERROR, failure=f"cannot reach {url}: {exc}")
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
                    self.called_targets,
                    self._draining,
                    self._metrics,
                    observed.journaled,
                )
                result = await bidi.run(connection, stream, body, media_type, reader)
            if result.ending is not Interrupted.REFUSED:
                return result
        return AttemptResult([], AttemptEnding.ERROR, failure=f"{url} refused the stream three times")

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
        if version >= 7:
            # What the SDK exposes as the request's scope, limit key and idempotency key.
            if status.scope is not None:
                start.scope = status.scope
            if status.limit_key is not None:
                start.limit_key = status.limit_key
            if status.idempotency_key is not None:
                start.idempotency_key = status.idempotency_key
        # One join of headers and stored payloads: framing each entry first would copy every
        # payload (up to the 32 MiB input) twice.
        parts = [encode_message(start)]
        for message_type, payload in journal:
            parts.append(frame_header(message_type, len(payload)))
            parts.append(payload)
        return b"".join(parts)

    async def _request_response_http11(
        self, url: str, headers: dict[str, str], body: bytes, media_type: str, abort: float
    ) -> AttemptResult:
        try:
            response = await self._http11.post(url, headers.items(), body, abort)
        except HttpError as exc:
            return AttemptResult([], AttemptEnding.ERROR, failure=f"cannot reach {url}: {exc}")
        refused = refused_answer(response.status, response.headers, media_type, url, response.body)
        return refused if refused is not None else read_messages(response.body)

    def _timeouts(self, status: InvocationStatus) -> tuple[float, float]:
        """(inactivity, abort) in seconds, as the handler's effective settings say."""
        settings = self._schema.settings(status.target.service, status.target.handler)
        if settings is None:
            return self._config.inactivity_timeout, self._config.abort_timeout
        return settings.inactivity_timeout, settings.abort_timeout

    def _schedule_retry(
        self, partition: Partition, invocation_id: str, attempt: int, status: InvocationStatus, result: AttemptResult
    ) -> Verdict:
        if self._draining.is_set():
            return Verdict.RETRY  # retried after the restart, with a fresh budget (retry state is in memory)
        retry = self.retries.setdefault(invocation_id, RetryState())
        settings = self._schema.settings(status.target.service, status.target.handler)
        policy = settings.retry_policy if settings is not None else self._config.retry_policy
        verdict, delay = after_failure(retry, policy, bool(result.entries), result.failure, result.retry_after)
        self._metrics.retry(status.target.service, RetryAction(verdict.value))
        if verdict is Verdict.KILL:
            log.warning("invocation %s killed after %d attempts: %s", invocation_id, retry.count, result.failure)
            self.retries.pop(invocation_id, None)
            return verdict  # the caller completes it with the failure
        if verdict is Verdict.PAUSE:
            log.warning("invocation %s paused after %d attempts: %s", invocation_id, retry.count, result.failure)
            # Durably: it stays paused across restarts until an operator resumes (or kills) it.
            partition.submit_detached(Pause(invocation_id))
            return verdict
        # Journal mismatches and protocol violations mean the code no longer matches its journal:
        # retries will not fix that without a deployment change, so make them loud.
        level = logging.WARNING if result.failure and result.failure.startswith(("[570]", "[571]")) else logging.INFO
        log.log(level, "invocation %s attempt failed (%s), retrying in %.3fs", invocation_id, result.failure, delay)
        self._retry_timers[invocation_id] = asyncio.get_running_loop().call_later(
            delay, self.start, partition, invocation_id, attempt
        )
        return verdict

    def _lazy_state(self, status: InvocationStatus) -> bool:
        settings = self._schema.settings(status.target.service, status.target.handler)
        return settings is not None and settings.lazy_state


def _outcome(invocation_id: str, attempt: int, deployment_id: str, entries: list[JournalEntry]) -> AttemptOutcome:
    """The ``end`` outcome of an attempt that wrote only ``entries``."""
    return AttemptOutcome(invocation_id, attempt, deployment_id, entries, AttemptEnding.END)


def _random_seed(raw_id: bytes) -> int:
    # Stable across attempts and restarts, as the SDKs expect for deterministic randomness.
    return int.from_bytes(hashlib.blake2b(raw_id, digest_size=8).digest(), "big")

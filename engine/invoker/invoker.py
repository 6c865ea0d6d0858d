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
from collections.abc import Callable

import aiohttp

from engine.config import Config
from engine.dapr.actors import call_actor
from engine.dapr.apps import DaprApps
from engine.dapr.targets import ACTOR_PREFIX, DEACTIVATE, is_actor
from engine.invoker.attempt import AttemptResult, Interrupted, MessageReader, called_targets, read_messages
from engine.invoker.bidi import BidiAttempt
from engine.invoker.http2 import Http2Error, Http2Pool, StreamRefused
from engine.invoker.retry import RetryState, Verdict, after_failure
from engine.partition.commands import AttemptEnding, AttemptOutcome, InvocationSettings, Pause, Terminate
from engine.partition.processor import Partition
from engine.partition.types import AttemptSnapshot
from engine.protocol import service_protocol_pb2 as pb
from engine.protocol.codec import content_type, encode_message, encode_raw
from engine.records import Deployment, InvocationStatus
from engine.schema.registry import Schema

log = logging.getLogger(__name__)


class Invoker:
    def __init__(
        self,
        config: Config,
        schema: Schema,
        http2: Http2Pool,
        dapr_apps: DaprApps,
        actor_turn: Callable[[str, str], None],
    ) -> None:
        self._config = config
        self._schema = schema
        self._dapr_apps = dapr_apps
        self._actor_turn = actor_turn  # a Dapr actor (type, id) took a turn: idle tracking
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
        task = asyncio.get_running_loop().create_task(self._attempt(partition, invocation_id, attempt))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def reset_retries(self, invocation_id: str) -> None:
        self.retries.pop(invocation_id, None)

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
            snapshot = partition.reads.snapshot(invocation_id, attempt)
            if snapshot is None:
                return
            status = snapshot.status
            deployment = self._schema.deployment_for(status.target.service, status.deployment_id)
            if is_actor(status.target):
                result = await call_actor(self._dapr_apps, status, snapshot.journal[0][1])
                if status.target.handler != DEACTIVATE:
                    self._actor_turn(status.target.service[len(ACTOR_PREFIX) :], status.target.key)
            elif deployment is None:
                result = AttemptResult([], AttemptEnding.ERROR, failure=f"no deployment serves {status.target.service}")
            else:
                result = await self._call(partition, attempt, deployment, snapshot)
            ending = result.ending
            if isinstance(ending, Interrupted):
                return  # stale (refusals were retried in _call)
            accepted = await partition.submit(
                AttemptOutcome(
                    invocation_id=invocation_id,
                    attempt=attempt,
                    deployment_id=deployment.id if deployment else "",
                    entries=result.entries,
                    ending=ending,
                    awaiting_completions=result.awaiting_completions,
                    awaiting_signals=result.awaiting_signals,
                    awaiting_signal_names=result.awaiting_signal_names,
                    targets=self.called_targets(result.entries),
                )
            )
        if not accepted:
            return
        if ending in (AttemptEnding.END, AttemptEnding.SUSPEND):
            self.retries.pop(invocation_id, None)
        else:
            self._schedule_retry(partition, invocation_id, attempt, status, result)

    def called_targets(self, entries: list[tuple[int, bytes]]) -> dict[str, InvocationSettings]:
        return called_targets(entries, self._invocation_settings)

    def _invocation_settings(self, service: str, handler: str) -> InvocationSettings | None:
        settings = self._schema.settings(service, handler)
        return None if settings is None else settings.invocation

    async def _call(
        self, partition: Partition, attempt: int, deployment: Deployment, snapshot: AttemptSnapshot
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
                return AttemptResult([], AttemptEnding.ERROR, failure=f"cannot reach {url}: {exc}")
            reader = MessageReader()
            if deployment.protocol_mode == "REQUEST_RESPONSE" or inactivity == 0:
                # Request/response over HTTP/2: write everything, close our side, read the answer.
                result = await BidiAttempt.request_response(connection, stream, body, media_type, reader, abort)
            else:
                bidi = BidiAttempt(
                    partition, status.id, attempt, deployment.id, version, inactivity, abort, self.called_targets
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
        return b"".join([encode_message(start), *(encode_raw(t, p) for t, p in journal)])

    async def _request_response_http11(
        self, url: str, headers: dict[str, str], body: bytes, media_type: str
    ) -> AttemptResult:
        try:
            async with self._session.post(url, data=body, headers=headers) as response:
                content = await response.read()
        except (TimeoutError, aiohttp.ClientError) as exc:
            return AttemptResult([], AttemptEnding.ERROR, failure=f"cannot reach {url}: {exc!r}")
        if response.status != 200:
            retry_after = response.headers.get("retry-after")
            return AttemptResult(
                [],
                AttemptEnding.ERROR,
                failure=f"unexpected status {response.status} from {url}: {content[:200]!r}",
                retry_after=float(retry_after) if retry_after and retry_after.isdigit() else None,
            )
        if response.headers.get("content-type") != media_type:
            return AttemptResult(
                [],
                AttemptEnding.ERROR,
                failure=f"unexpected content-type {response.headers.get('content-type')!r} from {url}",
            )
        return read_messages(content)

    def _timeouts(self, status: InvocationStatus) -> tuple[float, float]:
        """(inactivity, abort) in seconds, as the handler's effective settings say."""
        settings = self._schema.settings(status.target.service, status.target.handler)
        if settings is None:
            return self._config.inactivity_timeout, self._config.abort_timeout
        return settings.inactivity_timeout, settings.abort_timeout

    def _schedule_retry(
        self, partition: Partition, invocation_id: str, attempt: int, status: InvocationStatus, result: AttemptResult
    ) -> None:
        retry = self.retries.setdefault(invocation_id, RetryState())
        settings = self._schema.settings(status.target.service, status.target.handler)
        policy = settings.retry_policy if settings is not None else self._config.retry_policy
        verdict, delay = after_failure(retry, policy, bool(result.entries), result.failure, result.retry_after)
        if verdict is Verdict.KILL:
            log.warning("invocation %s killed after %d attempts: %s", invocation_id, retry.count, result.failure)
            self.retries.pop(invocation_id, None)
            partition.submit_detached(Terminate(invocation_id, kill=True))
            return
        if verdict is Verdict.PAUSE:
            log.warning("invocation %s paused after %d attempts: %s", invocation_id, retry.count, result.failure)
            # Durably: it stays paused across restarts until an operator resumes (or kills) it.
            partition.submit_detached(Pause(invocation_id))
            return
        # Journal mismatches and protocol violations mean the code no longer matches its journal:
        # retries will not fix that without a deployment change, so make them loud.
        level = logging.WARNING if result.failure and result.failure.startswith(("[570]", "[571]")) else logging.INFO
        log.log(level, "invocation %s attempt failed (%s), retrying in %.3fs", invocation_id, result.failure, delay)
        self._retry_timers[invocation_id] = asyncio.get_running_loop().call_later(
            delay, self.start, partition, invocation_id, attempt
        )

    def _lazy_state(self, status: InvocationStatus) -> bool:
        settings = self._schema.settings(status.target.service, status.target.handler)
        return settings is not None and settings.lazy_state


def _random_seed(raw_id: bytes) -> int:
    # Stable across attempts and restarts, as the SDKs expect for deterministic randomness.
    return int.from_bytes(hashlib.blake2b(raw_id, digest_size=8).digest(), "big")

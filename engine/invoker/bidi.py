"""One attempt in BIDI_STREAM mode: a single HTTP/2 stream kept open in both directions.

quill writes ``StartMessage`` + the journal and keeps its side open. Every batch of commands the
SDK writes is journaled at once (an ``open`` AttemptOutcome); notifications the partition then
produces — run completions, state, call results, timers, signals — are written back to the
stream as soon as they are durable, so the handler continues without suspending. When nothing
happens for the inactivity timeout quill closes its side, the SDK suspends, and a later
notification resumes the invocation in a new attempt; the abort timeout bounds how long quill
then waits for the SDK to finish.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from engine.invoker.attempt import NO_ENDING, AttemptResult, Interrupted, MessageReader, refused_answer
from engine.invoker.http2 import Connection, ConnectionDrained, Http2Error, Stream, StreamRefused
from engine.partition.commands import AttemptEnding, AttemptOutcome, InvocationSettings
from engine.partition.types import JournalEntry
from engine.protocol import service_protocol_pb2 as pb
from engine.protocol.codec import MessageType, encode_message, encode_raw
from engine.telemetry.metrics import Metrics

if TYPE_CHECKING:
    from engine.partition.processor import Partition

log = logging.getLogger(__name__)


class BidiAttempt:
    def __init__(
        self,
        partition: Partition,
        invocation_id: str,
        attempt: int,
        deployment_id: str,
        version: int,
        inactivity_timeout: float,
        abort_timeout: float,
        targets: Callable[[list[JournalEntry]], dict[str, InvocationSettings]],
        draining: asyncio.Event,
        metrics: Metrics,
        on_journaled: Callable[[list[JournalEntry]], None],
    ) -> None:
        self._partition = partition
        self._targets = targets  # settings of the handlers journaled calls go to
        self._metrics = metrics
        self._on_journaled = on_journaled  # told about every batch the partition accepted
        self._invocation_id = invocation_id
        self._attempt = attempt
        self._deployment_id = deployment_id
        self._version = version
        self._inactivity_timeout = inactivity_timeout
        self._abort_timeout = abort_timeout
        self._draining = draining  # a shutdown: close our side now, as after the inactivity timeout
        self._pushes: asyncio.Queue[tuple[int, bytes]] = asyncio.Queue()
        self._journaled = False  # once something is journaled, the request body is out of date

    async def run(
        self, connection: Connection, stream: Stream, body: bytes, media_type: str, reader: MessageReader
    ) -> AttemptResult:
        partition = self._partition
        partition.open_stream(self._invocation_id, self._attempt, self._push)
        receiving: asyncio.Task[bytes | None] | None = None
        pushing: asyncio.Task[tuple[int, bytes]] | None = None
        draining: asyncio.Task[bool] | None = None
        try:
            await stream.send(body)
            response = await asyncio.wait_for(stream.response_headers, self._abort_timeout)
            refused = refused_answer(int(response.get(":status", "0")), response, media_type, "the deployment")
            if refused is not None:
                return refused
            closed = False
            timeout = self._inactivity_timeout
            receiving = asyncio.ensure_future(stream.receive())
            pushing = asyncio.ensure_future(self._pushes.get())
            draining = asyncio.ensure_future(self._draining.wait())
            while True:
                waits: set[asyncio.Future[Any]] = {receiving, pushing}
                if not closed:
                    waits.add(draining)
                done, _ = await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                if draining in done and not closed:
                    # Shutdown: close our side so the SDK suspends once its current step is journaled.
                    await stream.end()
                    closed, timeout = True, self._abort_timeout
                    if done == {draining}:
                        continue
                if not done:
                    if closed:
                        return AttemptResult(
                            [], AttemptEnding.ERROR, failure="abort timeout: the SDK did not finish the attempt"
                        )
                    # Inactivity: close our side so the SDK suspends; it must answer within the abort timeout.
                    await stream.end()
                    closed, timeout = True, self._abort_timeout
                    continue
                if pushing in done:
                    message_type, payload = pushing.result()
                    if not closed:
                        await stream.send(encode_raw(message_type, payload))
                    pushing = asyncio.ensure_future(self._pushes.get())
                if receiving in done:
                    chunk = receiving.result()
                    if chunk is None:
                        return AttemptResult(reader.take_entries(), AttemptEnding.INCOMPLETE, failure=NO_ENDING)
                    result = reader.feed(chunk)
                    if result is not None:
                        return result
                    if not await self._journal(reader):
                        return AttemptResult([], Interrupted.STALE)
                    if not closed:
                        await self._answer_run_proposals(stream, reader)
                        timeout = self._inactivity_timeout
                    receiving = asyncio.ensure_future(stream.receive())
        except StreamRefused as exc:
            if not self._journaled:
                return AttemptResult([], Interrupted.REFUSED, failure=f"stream refused: {exc}")
            return AttemptResult(reader.take_entries(), AttemptEnding.ERROR, failure=str(exc), retry_after=0.0)
        except ConnectionDrained as exc:
            # Not the deployment's fault: a new attempt (from a fresh snapshot) may start at once.
            return AttemptResult(reader.take_entries(), AttemptEnding.ERROR, failure=str(exc), retry_after=0.0)
        except (TimeoutError, Http2Error) as exc:
            return AttemptResult(reader.take_entries(), AttemptEnding.ERROR, failure=f"stream failed: {exc!r}")
        finally:
            partition.close_stream(self._invocation_id, self._attempt)
            for task in (receiving, pushing, draining):
                if task is not None:
                    task.cancel()
            stream.reset()
            connection.forget(stream)

    @staticmethod
    async def request_response(
        connection: Connection,
        stream: Stream,
        body: bytes,
        media_type: str,
        reader: MessageReader,
        abort_timeout: float,
    ) -> AttemptResult:
        """The request/response mode over an HTTP/2 stream: our side closes after the journal."""
        try:
            await stream.send(body, end=True)
            response = await asyncio.wait_for(stream.response_headers, abort_timeout)
            refused = refused_answer(int(response.get(":status", "0")), response, media_type, "the deployment")
            if refused is not None:
                return refused
            while (chunk := await asyncio.wait_for(stream.receive(), abort_timeout)) is not None:
                if (result := reader.feed(chunk)) is not None:
                    return result
            return AttemptResult(reader.take_entries(), AttemptEnding.INCOMPLETE, failure=NO_ENDING)
        except StreamRefused as exc:
            return AttemptResult([], Interrupted.REFUSED, failure=f"stream refused: {exc}")
        except ConnectionDrained as exc:
            return AttemptResult(reader.take_entries(), AttemptEnding.ERROR, failure=str(exc), retry_after=0.0)
        except (TimeoutError, Http2Error) as exc:
            return AttemptResult(reader.take_entries(), AttemptEnding.ERROR, failure=f"stream failed: {exc!r}")
        finally:
            stream.reset()
            connection.forget(stream)

    def _push(self, message_type: int, payload: bytes) -> None:
        self._pushes.put_nowait((message_type, payload))

    async def _journal(self, reader: MessageReader) -> bool:
        """Journal what the SDK wrote so far; False if this attempt is no longer current."""
        entries = reader.take_entries()
        if not entries:
            return True
        outcome = AttemptOutcome(
            self._invocation_id,
            self._attempt,
            self._deployment_id,
            entries,
            AttemptEnding.OPEN,
            targets=self._targets(entries),
        )
        self._journaled = True
        accepted = bool(await self._metrics.timed(self._partition.submit, outcome))
        if accepted:
            self._on_journaled(entries)
        return accepted

    async def _answer_run_proposals(self, stream: Stream, reader: MessageReader) -> None:
        """Run results are durable now: acknowledge them (V7, when asked) or send them back."""
        proposals, reader.run_proposals = reader.run_proposals, []
        for completion_id, wants_ack, payload in proposals:
            if wants_ack and self._version >= 7:
                await stream.send(encode_message(pb.ProposeRunCompletionAckMessage(completion_id=completion_id)))
            else:
                await stream.send(encode_raw(MessageType.RUN_COMPLETION, payload))

"""A small HTTP/2 cleartext (h2c, prior knowledge) client with full-duplex streams.

Bidirectional service-protocol attempts write to the request body while reading the response
body, which httpx's HTTP/2 support cannot do (it sends the whole request before reading). The
protocol work is the ``h2`` library's (framing, HPACK, flow control state); this module only
moves bytes between it and asyncio, and pools connections per deployment with a bounded number
of concurrent streams per connection.
"""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import urlsplit

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions

log = logging.getLogger(__name__)


class Http2Error(Exception):
    """The connection or the stream failed; the attempt using it should be retried."""


class StreamRefused(Http2Error):
    """The peer never processed the stream (GOAWAY, REFUSED_STREAM): safe to retry at once."""


class ConnectionDrained(Http2Error):
    """The peer closed a connection it had announced closing (GOAWAY) under an open stream."""


class Stream:
    """One request/response exchange; body chunks are read and written concurrently."""

    def __init__(self, connection: Connection, stream_id: int) -> None:
        self._connection = connection
        self.id = stream_id
        self.response_headers: asyncio.Future[dict[str, str]] = asyncio.get_running_loop().create_future()
        self._chunks: asyncio.Queue[bytes | Exception | None] = asyncio.Queue()
        self._window_open = asyncio.Event()
        self.closed_by_us = False

    async def send(self, data: bytes, *, end: bool = False) -> None:
        await self._connection.send_data(self, data, end)

    async def end(self) -> None:
        if not self.closed_by_us:
            await self._connection.send_data(self, b"", True)

    async def receive(self) -> bytes | None:
        """The next body chunk, or None once the peer ended the stream."""
        chunk = await self._chunks.get()
        if isinstance(chunk, Exception):
            raise chunk
        return chunk

    def reset(self) -> None:
        self._connection.reset(self)

    # -- called by the connection's reader ------------------------------------------------
    def _deliver(self, item: bytes | Exception | None) -> None:
        self._chunks.put_nowait(item)

    def _fail(self, error: Exception) -> None:
        if not self.response_headers.done():
            self.response_headers.set_exception(error)
        self._deliver(error)
        self._window_open.set()


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, authority: str) -> None:
        self._reader = reader
        self._writer = writer
        self.authority = authority
        config = h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        self._h2 = h2.connection.H2Connection(config=config)
        self._streams: dict[int, Stream] = {}
        self._write_lock = asyncio.Lock()
        self._window_changed = asyncio.Event()
        self.broken: Exception | None = None
        self.going_away = False  # the peer sent GOAWAY: finish open streams, open no new ones
        self._h2.initiate_connection()
        # A large receive window: SDK responses stream into memory we already budget for.
        self._h2.increment_flow_control_window(16 * 1024 * 1024)
        self._writer.write(self._h2.data_to_send())
        self._reader_task = asyncio.get_running_loop().create_task(self._read_loop())

    @property
    def open_streams(self) -> int:
        return len(self._streams)

    @property
    def capacity(self) -> int:
        """How many more streams the peer lets us open now."""
        if self.going_away or self.broken is not None:
            return 0
        limit = self._h2.remote_settings.max_concurrent_streams or 100
        return min(limit, 128) - len(self._streams)

    async def open_stream(self, method: str, path: str, headers: list[tuple[str, str]]) -> Stream:
        async with self._write_lock:
            self._check(opening=True)
            stream_id = self._h2.get_next_available_stream_id()
            stream = Stream(self, stream_id)
            self._streams[stream_id] = stream
            request = [
                (":method", method),
                (":scheme", "http"),
                (":authority", self.authority),
                (":path", path),
                *headers,
            ]
            try:
                self._h2.send_headers(stream_id, request)
                await self._flush()
            except (h2.exceptions.H2Error, Http2Error) as exc:
                self._streams.pop(stream_id, None)
                raise StreamRefused(f"cannot open a stream: {exc}") from exc
        return stream

    async def send_data(self, stream: Stream, data: bytes, end: bool) -> None:
        view = memoryview(data)
        while True:
            async with self._write_lock:
                self._check()
                if stream.closed_by_us:
                    return
                try:
                    window = min(self._h2.local_flow_control_window(stream.id), self._h2.max_outbound_frame_size)
                    if window > 0 or not view:
                        piece, view = view[:window], view[window:]
                        last = end and not view
                        self._h2.send_data(stream.id, piece.tobytes(), end_stream=last)
                        stream.closed_by_us = last
                        await self._flush()
                        if not view:
                            return
                        continue
                except h2.exceptions.H2Error as exc:
                    # Typically the peer already closed or reset this stream.
                    raise Http2Error(f"cannot write to stream {stream.id}: {exc}") from exc
                self._window_changed.clear()
            await self._window_changed.wait()

    def reset(self, stream: Stream) -> None:
        if self.broken is None and stream.id in self._streams:
            try:
                self._h2.reset_stream(stream.id)
                self._writer.write(self._h2.data_to_send())
            except h2.exceptions.H2Error:
                pass
        self._streams.pop(stream.id, None)

    async def close(self) -> None:
        self._fail_all(Http2Error("connection closed"))
        self._reader_task.cancel()
        try:
            await self._reader_task
        except (asyncio.CancelledError, Exception):  # noqa: BLE001 - closing anyway
            pass
        self._writer.close()

    def _check(self, opening: bool = False) -> None:
        if self.broken is not None:
            # A stream not yet opened was never seen by the peer; an open one may have been.
            kind = StreamRefused if opening else Http2Error
            raise kind(f"connection to {self.authority} is broken: {self.broken}")

    async def _flush(self) -> None:
        try:
            self._writer.write(self._h2.data_to_send())
            await self._writer.drain()
        except OSError as exc:  # the peer went away (reset, broken pipe)
            raise Http2Error(f"connection to {self.authority} failed: {exc!r}") from exc

    async def _read_loop(self) -> None:
        try:
            while True:
                data = await self._reader.read(65536)
                if not data:
                    raise Http2Error("connection closed by the peer")
                try:
                    events = self._h2.receive_data(data)
                except h2.exceptions.H2Error as exc:
                    raise Http2Error(f"HTTP/2 protocol error: {exc}") from exc
                for event in events:
                    self._dispatch(event)
                outgoing = self._h2.data_to_send()
                if outgoing:
                    self._writer.write(outgoing)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - every failure breaks the whole connection
            if self.going_away:
                exc = ConnectionDrained(f"the peer closed the connection after GOAWAY: {exc}")
            self._fail_all(exc if isinstance(exc, Http2Error) else Http2Error(str(exc)))
            self._writer.close()

    def _dispatch(self, event: h2.events.Event) -> None:
        stream = self._streams.get(getattr(event, "stream_id", 0) or 0)
        if isinstance(event, h2.events.ResponseReceived) and stream is not None:
            headers = {str(k): str(v) for k, v in event.headers}
            if not stream.response_headers.done():
                stream.response_headers.set_result(headers)
        elif isinstance(event, h2.events.DataReceived):
            self._h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            if stream is not None:
                stream._deliver(event.data)
        elif isinstance(event, h2.events.StreamEnded) and stream is not None:
            stream._deliver(None)
            if stream.closed_by_us:
                self._streams.pop(stream.id, None)
        elif isinstance(event, h2.events.StreamReset) and stream is not None:
            kind = StreamRefused if event.error_code == h2.errors.ErrorCodes.REFUSED_STREAM else Http2Error
            stream._fail(kind(f"stream reset by the peer (error code {event.error_code})"))
            self._streams.pop(stream.id, None)
        elif isinstance(event, (h2.events.WindowUpdated, h2.events.RemoteSettingsChanged)):
            self._window_changed.set()
        elif isinstance(event, h2.events.ConnectionTerminated):
            # GOAWAY: streams above last_stream_id were never processed; the others may finish.
            self.going_away = True
            last = event.last_stream_id if event.last_stream_id is not None else 0
            for refused in [s for s in self._streams.values() if s.id > last]:
                refused._fail(StreamRefused("the peer is closing the connection (GOAWAY)"))
                self._streams.pop(refused.id, None)

    def _fail_all(self, error: Exception) -> None:
        self.broken = self.broken or error
        for stream in list(self._streams.values()):
            stream._fail(error)
        self._streams.clear()
        self._window_changed.set()

    def forget(self, stream: Stream) -> None:
        """The exchange is over on both sides."""
        self._streams.pop(stream.id, None)


class Http2Pool:
    """h2c connections per authority, each carrying up to its peer's concurrent-stream limit."""

    def __init__(self, connect_timeout: float = 10.0) -> None:
        self._connections: dict[str, list[Connection]] = {}
        self._connect_timeout = connect_timeout
        self._connecting: dict[str, asyncio.Lock] = {}

    async def open_stream(
        self, url: str, headers: list[tuple[str, str]], method: str = "POST"
    ) -> tuple[Connection, Stream]:
        parts = urlsplit(url)
        authority = parts.netloc
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        connection = await self._connection(authority, parts.hostname or "127.0.0.1", parts.port or 80)
        return connection, await connection.open_stream(method, path or "/", headers)

    async def _connection(self, authority: str, host: str, port: int) -> Connection:
        lock = self._connecting.setdefault(authority, asyncio.Lock())
        async with lock:
            live = [c for c in self._connections.get(authority, []) if c.broken is None and not c.going_away]
            self._connections[authority] = live
            for connection in live:
                if connection.capacity > 0:
                    return connection
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), self._connect_timeout)
            except (TimeoutError, OSError) as exc:
                raise Http2Error(f"cannot connect to {authority}: {exc!r}") from exc
            connection = Connection(reader, writer, authority)
            live.append(connection)
            return connection

    def usage(self) -> tuple[int, int]:
        """(live connections, streams open on them)."""
        live = [c for connections in self._connections.values() for c in connections if c.broken is None]
        return len(live), sum(connection.open_streams for connection in live)

    async def close(self) -> None:
        for connections in self._connections.values():
            for connection in connections:
                await connection.close()
        self._connections.clear()


async def request(
    pool: Http2Pool, url: str, headers: list[tuple[str, str]], body: bytes, method: str = "POST"
) -> tuple[int, dict[str, str], bytes]:
    """A plain request/response exchange over h2c (discovery, request/response attempts)."""
    connection, stream = await pool.open_stream(url, headers, method)
    try:
        await stream.send(body, end=True)
        response = await stream.response_headers
        chunks = []
        while (chunk := await stream.receive()) is not None:
            chunks.append(chunk)
        return int(response[":status"]), response, b"".join(chunks)
    finally:
        connection.forget(stream)

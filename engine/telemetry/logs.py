"""Log lines that say which invocation they concern, as text (the default) or JSON objects.

The invoker binds the invocation it runs an attempt for to a context variable
(:func:`bind_invocation`); each attempt is its own asyncio task, so the binding covers exactly
the code running for that attempt, and every record logged there — by quill or a library —
carries the invocation id, service, handler and partition. Code elsewhere that logs about an
invocation passes the same fields with ``extra=``.
"""

from __future__ import annotations

import contextvars
import logging
import sys
import time
from typing import NamedTuple

import msgspec

from engine.config import LogFormat
from engine.records import Target

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s%(invocation)s: %(message)s"
PROCESS_TEXT_FORMAT = "%(asctime)s %(levelname)s {process} %(name)s%(invocation)s: %(message)s"
FIELDS = ("invocation_id", "service", "handler", "partition")


class InvocationContext(NamedTuple):
    invocation_id: str
    service: str
    handler: str
    partition: int


current_invocation: contextvars.ContextVar[InvocationContext | None] = contextvars.ContextVar(
    "quill_invocation", default=None
)


def bind_invocation(invocation_id: str, target: Target, partition: int) -> None:
    """Tag every record the current task logs from now on (call it inside the attempt's task)."""
    current_invocation.set(InvocationContext(invocation_id, target.service, target.handler, partition))


class InvocationFilter(logging.Filter):
    """Copies the bound invocation onto each record (``extra=`` fields win) and renders the
    text form's ``[inv_… Service/handler]``."""

    def filter(self, record: logging.LogRecord) -> bool:
        bound = current_invocation.get()
        if bound is not None and not hasattr(record, "invocation_id"):
            for name, value in zip(FIELDS, bound, strict=True):
                setattr(record, name, value)
        invocation_id = getattr(record, "invocation_id", None)
        if invocation_id is None:
            record.invocation = ""
        elif hasattr(record, "service"):
            record.invocation = f" [{invocation_id} {record.service}/{getattr(record, 'handler', '')}]"
        else:
            record.invocation = f" [{invocation_id}]"
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (UTC, ms), level, logger, message, the process (``w1`` with
    ``--workers``, the node name in cluster mode), the invocation fields where known, and the
    formatted exception if any."""

    _encode = msgspec.json.Encoder().encode

    def __init__(self, process: str | None = None) -> None:
        super().__init__()
        self._process = process

    def format(self, record: logging.LogRecord) -> str:
        seconds = int(record.created)
        line: dict[str, object] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if self._process is not None:
            line["process"] = self._process
        for name in FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return self._encode(line).decode()


def configure_logging(level: str, log_format: LogFormat, process: str | None = None) -> None:
    """The process's one log handler (stderr), replacing what was configured before; a worker
    (``w1``) or cluster node (``n1``) names itself on every line."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(InvocationFilter())
    if log_format is LogFormat.JSON:
        handler.setFormatter(JsonFormatter(process))
    else:
        text = TEXT_FORMAT if process is None else PROCESS_TEXT_FORMAT.format(process=process)
        handler.setFormatter(logging.Formatter(text))
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level.upper())

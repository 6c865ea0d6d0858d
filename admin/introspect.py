"""What invocations and journal entries look like as rows of Restate's introspection tables
(``sys_invocation``, ``sys_invocation_status``, ``sys_invocation_state``, ``sys_journal``).

``GET /invocations/{id}``, the SQL tables and the web UI all render from these columns, so they
never disagree. Each column is a name, an Arrow type and a getter; times are ms since the epoch
here (the renderers format them), retentions ms durations.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
from google.protobuf.message import DecodeError

from engine import Engine, InvocationId, InvocationStatus, Phase
from engine.invoker.retry import RetryState
from engine.protocol.codec import MESSAGE_CLASSES, MessageType

TIME = pa.timestamp("ms", tz="UTC")
DURATION = pa.duration("ms")
_SERVICE_TYPES = {"SERVICE": "service", "VIRTUAL_OBJECT": "virtual_object", "WORKFLOW": "workflow"}


@dataclass(frozen=True)
class Registry:
    """What rows need from the schema registry, copied once per query (service name → type,
    deployment id → protocol version)."""

    service_types: dict[str, str]
    protocol_versions: dict[str, int]
    server_version: str

    @classmethod
    def of(cls, engine: Engine, server_version: str) -> Registry:
        schema = engine.schema
        return cls(
            {name: _SERVICE_TYPES.get(e.manifest.ty, e.manifest.ty) for name, e in schema.services.items()},
            {d.id: d.protocol_version for d in schema.deployments.values()},
            server_version,
        )


Pair = tuple[InvocationStatus, RetryState | None]
Getter = Callable[[InvocationStatus, RetryState | None, Registry], Any]


@dataclass(frozen=True)
class Column:
    name: str
    type: pa.DataType
    get: Getter


def status_word(status: InvocationStatus, retry: RetryState | None) -> str:
    """The status words of ``sys_invocation`` (and Restate's CLI)."""
    phase = status.phase
    if phase is Phase.RUNNING and retry is not None:
        if retry.paused:
            return "paused"
        if retry.count > 0:
            return "backing-off"
    if phase is Phase.INBOXED or (phase is Phase.SCHEDULED and status.execution_time is None):
        return "pending"  # Restate's word for queued work in sys_invocation
    if phase is Phase.WAITING:
        # Restate's words for an invocation waiting for a concurrency slot: "ready" once it ran
        # (woken from a suspension), "pending" before.
        return "ready" if status.has_run() else "pending"
    return phase


def raw_status_word(status: InvocationStatus, retry: RetryState | None) -> str:
    """The status words of ``sys_invocation_status``: the partition's record, before the view
    derives running / backing-off from the invoker's state."""
    word = status_word(status, retry)
    return {"pending": "inboxed", "running": "invoked", "backing-off": "invoked"}.get(word, word)


def _completion_result(status: InvocationStatus) -> str | None:
    completion = status.completion if status.phase is Phase.COMPLETED else None
    if completion is None:
        return None
    return "failure" if completion.failure is not None else "success"


def _completion_failure(status: InvocationStatus) -> str | None:
    completion = status.completion if status.phase is Phase.COMPLETED else None
    failure = completion.failure if completion is not None else None
    return f"[{failure.code}] {failure.message}" if failure is not None else None


def _commands(status: InvocationStatus) -> int:
    # Every notification journaled adds its id to one of these lists; the rest are commands.
    notifications = len(status.completion_ids) + len(status.signal_ids) + len(status.signal_names)
    return max(0, status.journal_length - notifications)


def _retention(status: InvocationStatus) -> int | None:
    return status.retention or None


def _in_flight(status: InvocationStatus, retry: RetryState | None) -> bool:
    return status_word(status, retry) == "running"


def _const(value: Any) -> Getter:
    return lambda s, r, g: value


_STR, _INT, _U32, _U64, _BOOL = pa.large_string(), pa.int64(), pa.uint32(), pa.uint64(), pa.bool_()

# Columns both sys_invocation_status and sys_invocation have (Restate's names and order).
_STATUS_COLUMNS = (
    Column("id", _STR, lambda s, r, g: s.id),
    Column("vqueue_id", _STR, _const(None)),
    Column("target", _STR, lambda s, r, g: str(s.target)),
    Column("target_service_name", _STR, lambda s, r, g: s.target.service),
    Column("target_service_key", _STR, lambda s, r, g: s.target.key or None),
    Column("target_handler_name", _STR, lambda s, r, g: s.target.handler),
    Column("target_service_ty", _STR, lambda s, r, g: g.service_types.get(s.target.service)),
    Column("scope", _STR, lambda s, r, g: s.scope),
    Column("limit_key", _STR, lambda s, r, g: s.limit_key),
    Column("idempotency_key", _STR, lambda s, r, g: s.idempotency_key),
    Column("invoked_by", _STR, lambda s, r, g: "service" if s.caller is not None else "ingress"),
    Column("invoked_by_service_name", _STR, _const(None)),
    Column("invoked_by_id", _STR, lambda s, r, g: s.caller.invocation_id if s.caller is not None else None),
    Column("invoked_by_subscription_id", _STR, _const(None)),
    Column("invoked_by_target", _STR, _const(None)),
    Column("restarted_from", _STR, _const(None)),
    Column("pinned_deployment_id", _STR, lambda s, r, g: s.deployment_id),
    Column(
        "pinned_service_protocol_version",
        _U32,
        lambda s, r, g: g.protocol_versions.get(s.deployment_id) if s.deployment_id else None,
    ),
    Column("trace_id", _STR, _const(None)),
    Column("journal_size", _U32, lambda s, r, g: s.journal_length),
    Column("journal_commands_size", _U32, lambda s, r, g: _commands(s)),
    Column("created_at", TIME, lambda s, r, g: s.created_at),
    Column("created_using_restate_version", _STR, lambda s, r, g: g.server_version),
    Column("modified_at", TIME, lambda s, r, g: s.modified_at),
    Column("inboxed_at", TIME, lambda s, r, g: s.created_at if s.phase is Phase.INBOXED else None),
    Column("scheduled_at", TIME, lambda s, r, g: s.created_at if s.execution_time is not None else None),
    Column("scheduled_start_at", TIME, lambda s, r, g: s.execution_time),
    Column("running_at", TIME, _const(None)),
    Column("completed_at", TIME, lambda s, r, g: s.modified_at if s.phase is Phase.COMPLETED else None),
    Column("completion_retention", DURATION, lambda s, r, g: _retention(s)),
    Column("journal_retention", DURATION, _const(None)),
    Column(
        "suspended_waiting_for_completions",
        pa.list_(_U32),
        lambda s, r, g: list(s.awaiting_completions) if s.phase is Phase.SUSPENDED else None,
    ),
    Column(
        "suspended_waiting_for_signals",
        pa.list_(_U32),
        lambda s, r, g: list(s.awaiting_signals) if s.phase is Phase.SUSPENDED else None,
    ),
    Column("suspended_waiting_future_json", _STR, _const(None)),
)

# Columns of sys_invocation_state: the invoker's view of an attempt (in memory, as Restate's).
_STATE_COLUMNS = (
    Column("retry_count", _U64, lambda s, r, g: r.count if r is not None else 0),
    Column("last_start_at", TIME, _const(None)),
    Column("next_retry_at", TIME, _const(None)),
    Column("last_attempt_deployment_id", _STR, lambda s, r, g: s.deployment_id),
    Column("last_attempt_server", _STR, _const(None)),
    Column("last_failure", _STR, lambda s, r, g: r.last_failure if r is not None else None),
    Column("last_failure_error_code", _STR, _const(None)),
    Column("last_failure_related_entry_index", _U64, _const(None)),
    Column("last_failure_related_entry_name", _STR, _const(None)),
    Column("last_failure_related_entry_type", _STR, _const(None)),
    Column("last_failure_related_command_index", _U64, _const(None)),
    Column("last_failure_related_command_name", _STR, _const(None)),
    Column("last_failure_related_command_type", _STR, _const(None)),
    Column("last_awaiting_on_future_json", _STR, _const(None)),
)
_PARTITION_KEY = Column("partition_key", _U64, lambda s, r, g: InvocationId(s.id).partition_key)
_RESULT_COLUMNS = (
    Column("completion_result", _STR, lambda s, r, g: _completion_result(s)),
    Column("completion_failure", _STR, lambda s, r, g: _completion_failure(s)),
)

SYS_INVOCATION: tuple[Column, ...] = (
    *_STATUS_COLUMNS,
    *_STATE_COLUMNS,
    Column("status", _STR, lambda s, r, g: status_word(s, r)),
    *_RESULT_COLUMNS,
)
SYS_INVOCATION_STATUS: tuple[Column, ...] = (
    _PARTITION_KEY,
    _STATUS_COLUMNS[0],
    _STATUS_COLUMNS[1],
    Column("status", _STR, lambda s, r, g: raw_status_word(s, r)),
    *_RESULT_COLUMNS,
    *_STATUS_COLUMNS[2:],
)
SYS_INVOCATION_STATE: tuple[Column, ...] = (
    _PARTITION_KEY,
    _STATUS_COLUMNS[0],
    Column("in_flight", _BOOL, lambda s, r, g: _in_flight(s, r)),
    *_STATE_COLUMNS,
)


def has_invocation_state(status: InvocationStatus) -> bool:
    """Whether ``sys_invocation_state`` has a row for it: Restate's has one per invoked invocation."""
    return status.phase is Phase.RUNNING


def invocation_row(status: InvocationStatus, retry: RetryState | None, registry: Registry) -> dict[str, Any]:
    return {column.name: column.get(status, retry, registry) for column in SYS_INVOCATION}


# -- journal entries ---------------------------------------------------------------------------
@dataclass(frozen=True)
class EntryView:
    """One journal entry as sys_journal shows it."""

    entry_type: str
    name: str
    completed: bool | None
    invoked_id: str | None
    invoked_target: str | None
    sleep_wakeup_at: int | None
    promise_name: str | None
    entry_json: str
    entry_lite_json: str


def entry_type(message_type: int) -> str:
    """Restate's names: "Command: Run", "Notification: Call", ..."""
    try:
        kind = MessageType(message_type)
    except ValueError:
        return f"Custom({message_type:#06x})"
    words = kind.name.split("_")
    category = words.pop()
    label = "".join(w.capitalize() for w in words) or kind.name.capitalize()
    if category == "COMMAND":
        return f"Command: {label}"
    if category in ("COMPLETION", "NOTIFICATION"):
        return f"Notification: {label}"
    return kind.name.capitalize()


def entry_view(status: InvocationStatus, index: int, message_type: int, payload: bytes) -> EntryView:
    kind = entry_type(message_type)
    cls = MESSAGE_CLASSES.get(message_type)
    fields: dict[str, Any] = {}
    message: Any = None
    if cls is not None:
        try:
            message = cls.FromString(payload)
        except DecodeError:
            message = None
    if message is not None:
        fields = {f.name: _json_value(v) for f, v in message.ListFields()}
    lite = {k: v for k, v in fields.items() if not _is_payload(k)}
    name = str(fields.get("name", "")) if message is not None else ""
    completion_id = fields.get("result_completion_id")
    completed = None if completion_id is None else completion_id in status.completion_ids
    invoked_id = invoked_target = None
    if message_type in (MessageType.CALL_COMMAND, MessageType.ONE_WAY_CALL_COMMAND) and message is not None:
        target_key = message.key
        invoked_target = "/".join(p for p in (message.service_name, target_key, message.handler_name) if p)
        invoked_id = str(
            InvocationId.derived(InvocationId(status.id).to_bytes(), index, message.service_name, target_key or None)
        )
    wakeup = fields.get("wake_up_time") if message_type == MessageType.SLEEP_COMMAND else None
    promise = None
    if message_type in (
        MessageType.GET_PROMISE_COMMAND,
        MessageType.PEEK_PROMISE_COMMAND,
        MessageType.COMPLETE_PROMISE_COMMAND,
    ):
        promise = str(fields.get("key", ""))
    head = {"ty": kind}
    return EntryView(
        kind,
        name,
        completed,
        invoked_id,
        invoked_target,
        int(wakeup) if wakeup is not None else None,
        promise,
        json.dumps({**head, **fields}),
        json.dumps({**head, **lite}),
    )


_PAYLOAD_FIELDS = ("value", "parameter", "content", "completion_value", "result", "failure")


def _is_payload(name: str) -> bool:
    return name in _PAYLOAD_FIELDS or name.endswith("_value")


def _json_value(value: Any) -> Any:
    """Protobuf field values as JSON: bytes as UTF-8 text where they are (else hex), messages as
    objects, repeated fields as lists."""
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError:
            return {"hex": value.hex()}
    if hasattr(value, "ListFields"):
        return {f.name: _json_value(v) for f, v in value.ListFields()}
    if isinstance(value, (list, tuple)) or type(value).__name__.startswith("Repeated"):
        return [_json_value(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)

"""Rows describing invocations, journals, state and the registry, as Restate's introspection
tables name them (``sys_invocation``, ``sys_journal``, ``state``, ...).

Both ``GET /invocations/{id}`` and the SQL endpoint render from these rows, so the two never
disagree. Times are milliseconds since the epoch here; the renderers format them.
"""

from __future__ import annotations

from typing import Any

from engine import Engine, InvocationStatus, Phase
from engine.invoker.retry import RetryState
from engine.protocol.codec import MessageType

_SERVICE_TYPES = {"SERVICE": "service", "VIRTUAL_OBJECT": "virtual_object", "WORKFLOW": "workflow"}

# Column names (in order) of sys_invocation; the timestamp columns are rendered as times.
INVOCATION_COLUMNS: tuple[str, ...] = (
    "id",
    "target",
    "target_service_name",
    "target_service_key",
    "target_handler_name",
    "target_service_ty",
    "idempotency_key",
    "invoked_by",
    "invoked_by_service_name",
    "invoked_by_id",
    "invoked_by_target",
    "pinned_deployment_id",
    "pinned_service_protocol_version",
    "trace_id",
    "journal_size",
    "journal_commands",
    "created_at",
    "modified_at",
    "inboxed_at",
    "scheduled_at",
    "scheduled_start_at",
    "running_at",
    "completed_at",
    "completion_retention",
    "retry_count",
    "last_start_at",
    "next_retry_at",
    "last_attempt_deployment_id",
    "last_attempt_server",
    "last_failure",
    "last_failure_error_code",
    "last_failure_related_entry_index",
    "last_failure_related_entry_name",
    "last_failure_related_entry_type",
    "status",
    "completion_result",
    "completion_failure",
    "scope",
    "limit_key",
)
INVOCATION_TIMES = frozenset(
    {"created_at", "modified_at", "inboxed_at", "scheduled_at", "scheduled_start_at", "running_at",
     "completed_at", "last_start_at", "next_retry_at"}
)  # fmt: skip


def status_word(status: InvocationStatus, retry: RetryState | None) -> str:
    """The status words of Restate's CLI and SQL tables."""
    phase = status.phase
    if phase is Phase.RUNNING and retry is not None:
        if retry.paused:
            return "paused"
        if retry.count > 0:
            return "backing-off"
    if phase is Phase.SCHEDULED and status.execution_time is None:
        return "pending"
    if phase is Phase.WAITING:
        # Restate's words for an invocation waiting for a concurrency slot: "ready" once it ran
        # (woken from a suspension), "pending" before.
        return "ready" if status.has_run() else "pending"
    return phase


def invocation_row(engine: Engine, status: InvocationStatus, retry: RetryState | None) -> dict[str, Any]:
    target = status.target
    entry = engine.schema.services.get(target.service)
    deployment = engine.schema.deployments.get(status.deployment_id or "")
    completion = status.completion if status.phase is Phase.COMPLETED else None
    failure = completion.failure if completion is not None else None
    word = status_word(status, retry)
    return {
        "id": status.id,
        "target": str(target),
        "target_service_name": target.service,
        "target_service_key": target.key or None,
        "target_handler_name": target.handler,
        "target_service_ty": _SERVICE_TYPES.get(entry.manifest.ty) if entry is not None else None,
        "idempotency_key": status.idempotency_key,
        "invoked_by": "service" if status.caller is not None else "ingress",
        "invoked_by_service_name": None,
        "invoked_by_id": status.caller.invocation_id if status.caller is not None else None,
        "invoked_by_target": None,
        "pinned_deployment_id": status.deployment_id,
        "pinned_service_protocol_version": deployment.protocol_version if deployment is not None else None,
        "trace_id": None,
        "journal_size": status.journal_length,
        "journal_commands": None,
        "created_at": status.created_at,
        "modified_at": status.modified_at,
        "inboxed_at": None,
        "scheduled_at": status.execution_time,
        "scheduled_start_at": status.execution_time,
        "running_at": None,
        "completed_at": status.modified_at if completion is not None else None,
        "completion_retention": status.retention or None,
        "retry_count": retry.count if retry is not None else 0,
        "last_start_at": None,
        "next_retry_at": None,
        "last_attempt_deployment_id": status.deployment_id,
        "last_attempt_server": None,
        "last_failure": retry.last_failure if retry is not None else None,
        "last_failure_error_code": None,
        "last_failure_related_entry_index": None,
        "last_failure_related_entry_name": None,
        "last_failure_related_entry_type": None,
        "status": word,
        "completion_result": None if completion is None else ("failure" if failure is not None else "success"),
        "completion_failure": f"[{failure.code}] {failure.message}" if failure is not None else None,
        "scope": status.scope,
        "limit_key": status.limit_key,
    }


async def journal_rows(engine: Engine) -> list[dict[str, Any]]:
    rows = []
    for status, journal in await engine.all_journals():
        for index, (message_type, payload) in enumerate(journal):
            try:
                kind = MessageType(message_type)
                entry_type = _entry_type(kind)
            except ValueError:
                entry_type = f"Custom({message_type:#06x})"
            rows.append(
                {
                    "id": status.id,
                    "index": index,
                    "entry_type": entry_type,
                    "name": None,
                    "completed": None,
                    "invoked_id": None,
                    "invoked_target": None,
                    "sleep_wakeup_at": None,
                    "promise_name": None,
                    "version": 2,
                    "raw": payload,
                    "entry_json": None,
                    "appended_at": None,
                }
            )
    return rows


def _entry_type(kind: MessageType) -> str:
    # Restate names entries like "Command: Run" / "Notification: Call"; the enum name carries it.
    words = kind.name.split("_")
    category = words.pop()
    label = "".join(w.capitalize() for w in words) or kind.name.capitalize()
    if category == "COMMAND":
        return f"Command: {label}"
    if category in ("COMPLETION", "NOTIFICATION"):
        return f"Notification: {label}"
    return kind.name.capitalize()

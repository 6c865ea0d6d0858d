"""quill's engine: partitions, invoker, timers and the registry, behind one facade.

The HTTP faces (``ingress/``, ``admin/``) use what this package exports: the :class:`Engine`
facade, the records and ids it answers with, and the one error tree. Names resolve lazily
(PEP 562), so importing a light module such as ``engine.durations`` does not load the runtime.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.config import Config, RetryPolicy, load_config
    from engine.durations import format_duration, parse_duration
    from engine.engine import Engine, InvocationRequest
    from engine.errors import (
        BadRequest,
        Conflict,
        DaprError,
        DeploymentError,
        InvalidMethod,
        InvocationFailure,
        InvokeFailed,
        MethodNotAllowed,
        NoAppId,
        NotFound,
        NotReady,
        PayloadTooLarge,
        QuillError,
        StartupError,
        Unavailable,
    )
    from engine.ids import InvocationId, parse_awakeable_id
    from engine.limits.names import SCOPED_VIRTUAL_OBJECT, InvalidName, parse_limit_key, parse_scope
    from engine.partition.types import OperatorOutcome, Outcome
    from engine.records import Completion, Deployment, Failure, InvocationStatus, Phase, Target, now_ms, timestamp

_EXPORTS = {
    "engine.config": ("Config", "RetryPolicy", "load_config"),
    "engine.durations": ("format_duration", "parse_duration"),
    "engine.engine": ("Engine", "InvocationRequest"),
    "engine.errors": (
        "BadRequest",
        "Conflict",
        "DaprError",
        "DeploymentError",
        "InvalidMethod",
    "InvalidName",
        "InvocationFailure",
        "InvokeFailed",
        "MethodNotAllowed",
        "NoAppId",
        "NotFound",
        "NotReady",
        "PayloadTooLarge",
        "QuillError",
        "StartupError",
        "Unavailable",
    ),
    "engine.ids": ("InvocationId", "parse_awakeable_id"),
    "engine.limits.names": ("InvalidName", "SCOPED_VIRTUAL_OBJECT", "parse_limit_key", "parse_scope"),
    "engine.partition.types": ("OperatorOutcome", "Outcome"),
    "engine.records": (
        "Completion",
        "Deployment",
        "Failure",
        "InvocationStatus",
        "Phase",
        "Target",
        "now_ms",
        "timestamp",
    ),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = [
    "BadRequest",
    "Completion",
    "Config",
    "Conflict",
    "DaprError",
    "Deployment",
    "DeploymentError",
    "Engine",
    "Failure",
    "InvalidMethod",
    "InvalidName",
    "InvocationFailure",
    "InvocationId",
    "InvocationRequest",
    "InvocationStatus",
    "InvokeFailed",
    "MethodNotAllowed",
    "NoAppId",
    "NotFound",
    "NotReady",
    "Phase",
    "OperatorOutcome",
    "Outcome",
    "PayloadTooLarge",
    "QuillError",
    "RetryPolicy",
    "SCOPED_VIRTUAL_OBJECT",
    "StartupError",
    "Target",
    "Unavailable",
    "format_duration",
    "load_config",
    "now_ms",
    "parse_awakeable_id",
    "parse_duration",
    "parse_limit_key",
    "parse_scope",
    "timestamp",
]


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'engine' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)

"""The one error tree of quill.

Every failure that can reach a user is an instance of :class:`QuillError`; the HTTP faces map it
to a response in one place (``ingress.responses.error_response`` and the admin exception handler).

    QuillError (status, code, message)
    ├── BadRequest              400: malformed path, body, header or parameter
    ├── NotFound                404: unknown service, handler, deployment or invocation
    ├── MethodNotAllowed        405: HTTP method not served on that path
    ├── Conflict                409: the request clashes with stored state
    │   ├── BreakingChange      409 META0006: a registration changes a service's type
    │   └── RevisionMismatch    a compare-and-set on cluster metadata lost to another writer
    ├── PayloadTooLarge         413: request body over the configured limit
    ├── NotReady                470: the invocation exists but has no result yet (output)
    ├── DeploymentError         400: discovery of a deployment failed or its manifest is unusable
    ├── Unavailable             503: the engine cannot accept work right now (shutting down, disk)
    │   └── LogError            cluster mode: the replicated log (engine.log) refused or failed an operation
    │       ├── WrongLastSequence   a conditional append found the log's tail elsewhere than expected
    │       │   └── Fenced          ... because another writer appended there: this writer is deposed
    │       ├── LogUnavailable      no stream leader or quorum answered within the deadline (retry later)
    │       ├── Trimmed             a read starts below the oldest retained record: restore a snapshot
    │       ├── LeaseLost           a lease renewal found another holder (or none): step down
    │       └── UnsupportedServer   the NATS server is older than cluster mode needs, or has no JetStream
    ├── StartupError            quill cannot start (port taken, data dir in use, disk full, bad key):
    │                           the command line prints its message as one line and exits non-zero
    ├── InvocationFailure       the handler ended with a terminal error; status = its code
    └── DaprError               an error of the Dapr API, answered in daprd's ``{errorCode, message}``
        ├── NoAppId             404: no app id in the path or the dapr-app-id header
        ├── InvalidMethod       400: ``.../method/`` names no method
        ├── InvokeFailed        500 (403 when access control denies): the call did not reach the app
        └── BodyTooLarge        413: a Dapr request body over the configured limit

Retryable failures of an attempt never surface here: the invoker retries them (see
``engine.retry``) and only a terminal outcome completes an invocation.
"""

from __future__ import annotations


class QuillError(Exception):
    """Base error, carrying what the HTTP faces need to answer."""

    status: int = 500
    source: str = "ingress"
    restate_code: str | None = None  # the admin API's error code (e.g. "META0006"), when Restate has one

    def __init__(
        self, message: str, *, status: int | None = None, invocation_id: str | None = None, source: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.invocation_id = invocation_id  # answered as x-restate-id when the error concerns one
        if status is not None:
            self.status = status
        if source is not None:
            self.source = source

    @property
    def code(self) -> int:
        return self.status


class BadRequest(QuillError):
    status = 400


class NotFound(QuillError):
    status = 404


class MethodNotAllowed(QuillError):
    status = 405


class PayloadTooLarge(QuillError):
    status = 413


class NotReady(QuillError):
    status = 470


class Conflict(QuillError):
    status = 409


class BreakingChange(Conflict):
    """A new revision of a service may not change its type (Restate's META0006)."""

    restate_code = "META0006"

    def __init__(self, service: str) -> None:
        super().__init__(
            f"[META0006] detected a new service revision for '{service}' changing the service type from"
            " previous revision. Service type cannot be changed across revisions."
        )


class DeploymentError(QuillError):
    status = 400


class Unavailable(QuillError):
    status = 503


class StartupError(QuillError):
    """Start-up is impossible; the message says why in one line, for the operator."""


class InvocationFailure(QuillError):
    """A terminal failure produced by the invoked handler (or by cancel/kill)."""

    source = "invocation"

    def __init__(self, code: int, message: str) -> None:
        # Handler codes outside the HTTP range would make an invalid status line.
        super().__init__(message, status=code if 400 <= code <= 599 else 500)
        self.failure_code = code

    @property
    def code(self) -> int:
        return self.failure_code


class DaprError(QuillError):
    """An error of the Dapr API: answered as ``{"errorCode", "message"}`` (daprd's shape)."""

    error_code = "ERR_DIRECT_INVOKE"

    def __init__(self, message: str, *, status: int = 500, error_code: str | None = None) -> None:
        super().__init__(message, status=status)
        if error_code is not None:
            self.error_code = error_code


class NoAppId(DaprError):
    """daprd: no app id in the path (e.g. ``/v1.0/invoke/app/method`` without a slash) nor in a header."""

    def __init__(self) -> None:
        super().__init__("failed getting app id either from the URL path or the header dapr-app-id", status=404)


class InvalidMethod(DaprError):
    """daprd: ``/v1.0/invoke/app/method/`` names no method."""

    def __init__(self) -> None:
        super().__init__("invalid method name", status=400)


class InvokeFailed(DaprError):
    """daprd's ``failed to invoke, id: X, err: ...``: unknown app, transport failure (500), or
    refused by access control (403, where daprd keeps the ERR_DIRECT_INVOKE code)."""

    def __init__(self, app_id: str, reason: str, *, status: int = 500) -> None:
        super().__init__(f"failed to invoke, id: {app_id}, err: {reason}", status=status)


class BodyTooLarge(DaprError):
    def __init__(self, limit: int) -> None:
        super().__init__(f"request body larger than {limit} bytes", status=413, error_code="ERR_BODY_TOO_LARGE")


class RevisionMismatch(Conflict):
    """A compare-and-set write named a revision that is no longer the current one."""

    def __init__(self, key: str, expected: int, actual: int | None = None) -> None:
        now = "absent" if actual is None else f"at revision {actual}"
        super().__init__(f"{key!r} changed: expected revision {expected}, it is {now}")
        self.key = key
        self.expected = expected
        self.actual = actual


class LogError(Unavailable):
    """The replicated log refused or failed an operation; a 503 if it ever reaches a client."""


class WrongLastSequence(LogError):
    """A conditional append expected the log to end at ``expected``; it ends at ``actual``."""

    def __init__(self, partition: int, expected: int, actual: int, detail: str = "") -> None:
        super().__init__(
            f"partition {partition}: append expected the log to end at {expected}, it ends at {actual}"
            + (f" ({detail})" if detail else "")
        )
        self.partition = partition
        self.expected = expected
        self.actual = actual


class Fenced(WrongLastSequence):
    """Another writer's record took the position: this writer lost the partition and must step down."""


class LogUnavailable(LogError):
    """No stream leader or quorum answered within the deadline; nothing is known to have been written."""


class Trimmed(LogError):
    """A read asked for records below the oldest one the log still keeps (they live in a snapshot)."""

    def __init__(self, partition: int, requested: int, first: int) -> None:
        super().__init__(f"partition {partition}: records below {first} were trimmed (asked from {requested})")
        self.partition = partition
        self.requested = requested
        self.first = first


class LeaseLost(LogError):
    """Renewing a partition lease found that another node holds it now, or that it was released."""


class UnsupportedServer(LogError):
    """The NATS server cannot keep cluster mode's guarantees (too old, or JetStream disabled)."""

"""The one error tree of quill.

Every failure that can reach a user is an instance of :class:`QuillError`; the HTTP faces map it
to a response in one place (``ingress.responses.error_response`` and the admin exception handler).

    QuillError (status, code, message)
    ├── BadRequest              400: malformed path, body, header or parameter
    ├── NotFound                404: unknown service, handler, deployment or invocation
    ├── MethodNotAllowed        405: HTTP method not served on that path
    ├── Conflict                409: the request clashes with stored state
    ├── PayloadTooLarge         413: request body over the configured limit
    ├── NotReady                470: the invocation exists but has no result yet (output)
    ├── DeploymentError         400: discovery of a deployment failed or its manifest is unusable
    ├── Unavailable             503: the engine cannot accept work right now (shutting down, disk)
    └── InvocationFailure       the handler ended with a terminal error; status = its code

Retryable failures of an attempt never surface here: the invoker retries them (see
``engine.retry``) and only a terminal outcome completes an invocation.
"""

from __future__ import annotations


class QuillError(Exception):
    """Base error, carrying what the HTTP faces need to answer."""

    status: int = 500
    source: str = "ingress"

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


class DeploymentError(QuillError):
    status = 400


class Unavailable(QuillError):
    status = 503


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

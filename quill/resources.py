"""Process resources at start: the file-descriptor limit, and the connection cap it allows.

Every connection is a file descriptor, and so are RocksDB's files and the invoker's connections to
deployments. The soft limit is often 1 024 while the hard one is far higher: raise the soft limit
to the hard one (as most servers do), then let at most half of it be inbound connections, so a
flood of idle connections cannot starve storage and outbound calls.
"""

from __future__ import annotations

import logging
import resource

log = logging.getLogger("quill")

_MINIMUM_CONNECTIONS = 16
_NO_MORE_THAN = 1 << 20  # a soft limit of "unlimited" is refused by Linux above nr_open


def raise_file_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit; the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = _NO_MORE_THAN if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
        except (ValueError, OSError) as exc:
            log.warning("cannot raise the file-descriptor limit from %d to %d: %s", soft, wanted, exc)
    return _NO_MORE_THAN if soft == resource.RLIM_INFINITY else soft


def connection_cap(max_connections: int, file_limit: int) -> int:
    return max(_MINIMUM_CONNECTIONS, min(max_connections, file_limit // 2))

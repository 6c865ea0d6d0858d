"""Start-up of ``quill.testing.harness`` to the first answered call, in this interpreter: the first
harness pays for importing the server, every later one is what each test of a session pays.

    python -m benchmarks.harness_startup [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

from examples.testing.greeter import app
from quill.testing import harness


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    timings = []
    for _ in range(runs + 1):
        started = time.perf_counter()
        with harness(app) as h, h.ingress_client() as client:
            client.post("/Greeter/greet", json="quick").raise_for_status()
        timings.append(time.perf_counter() - started)
    later = timings[1:]
    print(f"first harness (imports the server): {timings[0]:.2f} s")
    print(f"each later harness: median {statistics.median(later):.2f} s [{min(later):.2f}-{max(later):.2f}]")


if __name__ == "__main__":
    main()

"""Two agents race for one resource: exactly one holds it, the other waits and takes over
when the first releases.

    python examples/race.py DATA_DIR_OF_NODE_A DATA_DIR_OF_NODE_B [RESOURCE]

Each data directory is that of a running ``plexus run`` node; the two nodes must be connected
(one bootstrapped from the other) and in the same namespace.
"""

from __future__ import annotations

import sys
import threading
import time

from plexus_client import Client


def agent(name: str, data_dir: str, resource: str, start: threading.Barrier) -> None:
    with Client(data_dir=data_dir) as node:
        start.wait()  # Both claim at the same moment.
        with node.claim(resource, lease_ms=20_000, note=f"{name} racing", wait_s=120) as held:
            print(f"{name}: holding {resource} (claim {held.claim_id[:12]})", flush=True)
            time.sleep(1)  # The work done while holding the lease.
            print(f"{name}: releasing {resource}", flush=True)


def main() -> None:
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    resource = sys.argv[3] if len(sys.argv) > 3 else "demo/race"
    start = threading.Barrier(2)
    racers = [
        threading.Thread(target=agent, args=(name, data_dir, resource, start))
        for name, data_dir in (("agent-a", sys.argv[1]), ("agent-b", sys.argv[2]))
    ]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join()


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""The cluster commands' latency, dcache beside Redis: an idle 3-node cluster of each (as
bench/migration.py starts them), then 300 calls of each command on one connection to the first
node; prints the median and the 90th percentile in ms (the Python client's parsing included, which
dominates for large replies), and the number of ranges and bytes of CLUSTER SLOTS.

Usage: python3 bench/cluster_commands.py [--dcache target/release/dcache]
"""

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import migration as m  # noqa: E402

class CountingConn(m.Conn):
    """A connection that counts the bytes it receives."""

    received = 0

    def _fill(self):
        before = len(self.buf) - self.pos
        super()._fill()
        self.received += len(self.buf) - before


COMMANDS = (("PING",), ("CLUSTER", "INFO"), ("INFO", "cluster"), ("CLUSTER", "SLOTS"),
            ("CLUSTER", "NODES"), ("CLUSTER", "SHARDS"), ("CLUSTER", "MYID"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dcache", default="target/release/dcache")
    ap.add_argument("--calls", type=int, default=300)
    args = ap.parse_args()
    node_args = argparse.Namespace(dcache=args.dcache, maxmemory="1gb", threads=1,
                                   migration_rate=None, log_level="warn", pipeline=0)
    for cls in (m.RedisCluster, m.DcacheCluster):
        workdir = tempfile.mkdtemp(prefix="cluster-commands-")
        cl = cls(node_args, workdir)
        try:
            cl.start()
            c = m.Conn(cl.ports[0])
            slots = m.encode("CLUSTER", "SLOTS")
            ranges = c.call("CLUSTER", "SLOTS")
            raw = CountingConn(cl.ports[0])
            raw.sock.sendall(slots)
            raw.read()
            size = raw.received  # the one reply, whole
            raw.close()
            out = [f"CLUSTER SLOTS: {len(ranges)} ranges, {size} bytes"]
            for cmd in COMMANDS:
                times = []
                for _ in range(args.calls):
                    t = time.perf_counter()
                    c.call(*cmd)
                    times.append((time.perf_counter() - t) * 1000)
                times.sort()
                out.append(f"{' '.join(cmd)} {statistics.median(times):.3f} / "
                           f"{times[int(len(times) * 0.9)]:.3f} ms")
            c.close()
            print(f"{cl.name}: " + "; ".join(out), flush=True)
        finally:
            cl.stop()
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Lists, sets and sorted sets: dcache against redis-server, on this machine, in one run.

Both servers run on loopback with one thread, no persistence, pinned to core 0; the load
generator (`redis-benchmark`, the same for both) runs pinned to core 1.

1. Memory (`--part memory`): for each type, a fresh server of each kind is loaded through
   `redis-cli --pipe` with the same `--keys` small collections of `--elements` members each
   (8-byte members; sorted-set scores are small integers; a hash's fields are 8-byte names with
   8-byte values), and the growth of its resident set (`VmRSS`) is divided by the members
   stored, and by the keys.
2. CPU (`--part cpu`): LPUSH, LPOP, SADD, ZADD, ZRANGE (`ZRANGE zr 0 9 WITHSCORES` on a
   100-member set), HSET and HGETALL (of the hashes HSET filled, a few fields each) at pipeline
   1 and 16, 50 connections, `--requests` each, over `--rounds` rounds with the servers
   interleaved. The server's CPU time per request (utime + stime from /proc/PID/stat around
   each run, divided by its requests) is the figure that holds on a shared
   machine; throughput is printed too. Tables show medians.

3. Rate limiting (`--part ratelimit`, not in `both`): dcache's CL.THROTTLE against the sorted-set
   sliding window most teams write, run as a script with EVALSHA on both servers.

Prints markdown tables; writes nothing. Every server it starts, it stops; every run is bounded by
its request count.

Usage: python3 bench/types.py [--part memory|cpu|ratelimit|both] [--keys 1000000] [--elements 5]
       [--requests 200000] [--rounds 3] [--types list,set,"sorted set",hash] [--cluster]
       [--dcache PATH]
"""

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

from compare import ROOT, TICKS, Server, cpu_ticks, free_port, machine, rss_bytes

TYPES = {
    # name: (command, how one member is written after the key)
    "list": ("RPUSH", lambda m, i: [m]),
    "set": ("SADD", lambda m, i: [m]),
    "sorted set": ("ZADD", lambda m, i: [str(i).encode(), m]),
    "hash": ("HSET", lambda m, i: [m, b"v%07d" % i]),
}


def start(kind, dcache, cluster=None):
    """A server of `kind`; with `cluster` (a directory for its state), a one-node cluster that
    serves every slot, so that both pay for their cluster bookkeeping (Redis 7's per-slot key
    lists, dcache's slot index)."""
    port = free_port()
    if kind == "redis":
        argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no"]
        if cluster:
            argv += ["--cluster-enabled", "yes", "--cluster-config-file",
                     os.path.join(cluster, f"nodes-{port}.conf")]
    else:
        argv = [dcache, "node", str(port), "--threads", "1", "--log-level", "warn",
                "--cluster-enabled", "yes" if cluster else "no"]
    server = Server(kind, "resp", argv, port)
    if cluster:
        if kind == "redis":
            cli(port, "CLUSTER", "ADDSLOTSRANGE", "0", "16383")
        deadline = time.time() + 30
        while "cluster_state:ok" not in cli(port, "CLUSTER", "INFO"):
            if time.time() > deadline:
                server.stop()
                sys.exit(f"{kind} on port {port} did not serve every slot within 30 s")
            time.sleep(0.1)
    return server


def cli(port, *args):
    return subprocess.run(["redis-cli", "-p", str(port)] + list(args), check=True,
                          capture_output=True, text=True).stdout


def resp(args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def write_load(path, type_name, keys, elements):
    command, member = TYPES[type_name]
    with open(path, "wb") as f:
        for k in range(keys):
            args = [command.encode(), b"k:%010d" % k]
            for e in range(elements):
                args += member(b"m%07d" % e, e)
            f.write(resp(args))


def memory(dcache, keys, elements, types, cluster):
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for type_name in types:
            path = os.path.join(tmp, "load.resp")
            write_load(path, type_name, keys, elements)
            for kind in ("redis", "dcache"):
                s = start(kind, dcache, tmp if cluster else None)
                try:
                    base = rss_bytes(s.proc.pid)
                    with open(path, "rb") as f:
                        r = subprocess.run(["taskset", "-c", "1", "redis-cli", "-p", str(s.port),
                                            "--pipe"], stdin=f, capture_output=True, text=True)
                    if r.returncode != 0 or "errors: 0" not in r.stdout:
                        sys.exit(f"loading {type_name} into {kind} failed: {r.stdout} {r.stderr}")
                    grown = rss_bytes(s.proc.pid) - base
                finally:
                    s.stop()
                rows[(type_name, kind)] = grown
                print(f"{type_name:10} {kind:7} {grown / (keys * elements):7.1f} B/member "
                      f"{grown / keys:7.1f} B/key", flush=True)
    mode = "one-node clusters" if cluster else "standalone servers"
    lines = [f"{keys:,} keys of {elements} members each (8-byte members), {mode}, resident "
             "bytes:", "",
             "| type | redis per member | dcache per member | redis per key | dcache per key "
             "| dcache ÷ redis |", "|---|---:|---:|---:|---:|---:|"]
    for type_name in types:
        r, d = rows[(type_name, "redis")], rows[(type_name, "dcache")]
        n = keys * elements
        lines.append(f"| {type_name} | {r / n:.1f} | {d / n:.1f} | {r / keys:.1f} | "
                     f"{d / keys:.1f} | {d / r:.2f} |")
    return "\n".join(lines)


WORKLOADS = [
    ("LPUSH", ["-r", "10000", "LPUSH", "l:__rand_int__", "element"]),
    ("LPOP", ["-r", "10000", "LPOP", "l:__rand_int__"]),
    ("SADD", ["-r", "100000", "SADD", "s:__rand_int__", "m:__rand_int__"]),
    ("ZADD", ["-r", "100000", "ZADD", "z:__rand_int__", "__rand_int__", "m:__rand_int__"]),
    ("ZRANGE", ["ZRANGE", "zr", "0", "9", "WITHSCORES"]),
    ("HSET", ["-r", "100000", "HSET", "h:__rand_int__", "f:__rand_int__", "value"]),
    ("HGETALL", ["-r", "100000", "HGETALL", "h:__rand_int__"]),
]


def bench(server, requests, pipeline, workload):
    argv = ["taskset", "-c", "1", "redis-benchmark", "-p", str(server.port), "-c", "50",
            "-n", str(requests), "-P", str(pipeline), "-q"] + workload
    before = cpu_ticks(server.proc.pid)
    r = subprocess.run(argv, capture_output=True, text=True)
    cpu = (cpu_ticks(server.proc.pid) - before) / TICKS
    if r.returncode != 0:
        sys.exit(f"redis-benchmark against {server.name} failed: {r.stderr.strip()}")
    # "-q" prints "<command>: <n> requests per second, p50=..." (after \r progress lines); the
    # command itself may hold colons.
    found = re.findall(r"([0-9.]+) requests per second", r.stdout)
    if not found:
        sys.exit(f"redis-benchmark printed no rate: {r.stdout[-200:]}")
    ops = float(found[-1])
    return {"ops": ops, "cpu_us": cpu * 1e6 / requests}


def cpu(dcache, requests, rounds):
    servers = [start("redis", dcache), start("dcache", dcache)]
    runs = {}
    try:
        for s in servers:
            members = []
            for i in range(100):
                members += [str(i), f"member:{i}"]
            subprocess.run(["redis-cli", "-p", str(s.port), "ZADD", "zr"] + members, check=True,
                           capture_output=True)
        for rnd in range(rounds):
            for name, workload in WORKLOADS:
                for pipeline in (1, 16):
                    for s in servers:
                        r = bench(s, requests, pipeline, workload)
                        runs.setdefault((name, pipeline, s.name), []).append(r)
                        print(f"round {rnd + 1} {s.name:7} {name:6} P{pipeline:<2} "
                              f"{r['ops']:>9.0f} ops/s cpu {r['cpu_us']:.3f} us/req", flush=True)
    finally:
        for s in servers:
            s.stop()
    lines = [f"50 connections, {requests:,} requests per run, medians of {rounds} rounds:", "",
             "| command | pipeline | redis ops/s | dcache ops/s | redis CPU µs/req "
             "| dcache CPU µs/req | dcache ÷ redis |", "|---|---:|---:|---:|---:|---:|---:|"]
    for name, _ in WORKLOADS:
        for pipeline in (1, 16):
            med = {k: {f: statistics.median(r[f] for r in runs[(name, pipeline, k)])
                       for f in ("ops", "cpu_us")} for k in ("redis", "dcache")}
            lines.append(f"| {name} | {pipeline} | {med['redis']['ops']:,.0f} | "
                         f"{med['dcache']['ops']:,.0f} | {med['redis']['cpu_us']:.2f} | "
                         f"{med['dcache']['cpu_us']:.2f} | "
                         f"{med['dcache']['cpu_us'] / med['redis']['cpu_us']:.2f} |")
    return "\n".join(lines)


# The sorted-set sliding window most teams write (docs/RATE-LIMITING.md): at most LIMIT requests
# in the last WINDOW milliseconds per key, each request a member scored by its time.
WINDOW_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], 0, now - window)
if redis.call('ZCARD', KEYS[1]) < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], window)
  return 1
end
return 0
"""


def ratelimit(dcache, requests, rounds):
    """CL.THROTTLE (dcache's native GCRA) against the sorted-set window run as a script
    (EVALSHA), on dcache and on Redis: the server's CPU per request."""
    servers = [start("redis", dcache), start("dcache", dcache)]
    runs = {}
    try:
        shas = {}
        for s in servers:
            r = subprocess.run(["redis-cli", "-p", str(s.port), "SCRIPT", "LOAD", WINDOW_SCRIPT],
                               check=True, capture_output=True, text=True)
            shas[s.name] = r.stdout.strip()
        cases = [("window script (EVALSHA)", s, ["-r", "10000", "EVALSHA", shas[s.name], "1",
                                                  "rl:__rand_int__", "60000", "10",
                                                  "m:__rand_int__"]) for s in servers]
        cases.append(("CL.THROTTLE", servers[1], ["-r", "10000", "CL.THROTTLE",
                                                  "gcra:__rand_int__", "9", "10", "60", "1"]))
        for rnd in range(rounds):
            for name, s, workload in cases:
                for pipeline in (1, 16):
                    r = bench(s, requests, pipeline, workload)
                    runs.setdefault((name, s.name, pipeline), []).append(r)
                    print(f"round {rnd + 1} {s.name:7} {name:24} P{pipeline:<2} "
                          f"{r['ops']:>9.0f} ops/s cpu {r['cpu_us']:.3f} us/req", flush=True)
    finally:
        for s in servers:
            s.stop()
    lines = [f"10,000 keys, 50 connections, {requests:,} requests per run, medians of {rounds} "
             "rounds:", "", "| limiter | server | pipeline | ops/s | CPU µs/req |",
             "|---|---|---:|---:|---:|"]
    for (name, server, pipeline), rs in runs.items():
        lines.append(f"| {name} | {server} | {pipeline} | "
                     f"{statistics.median(r['ops'] for r in rs):,.0f} | "
                     f"{statistics.median(r['cpu_us'] for r in rs):.2f} |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--part", choices=("memory", "cpu", "ratelimit", "both"), default="both")
    ap.add_argument("--keys", type=int, default=1_000_000)
    ap.add_argument("--elements", type=int, default=5)
    ap.add_argument("--requests", type=int, default=200_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--types", default=",".join(TYPES),
                    help="comma-separated types for --part memory (default: all)")
    ap.add_argument("--cluster", action="store_true",
                    help="--part memory on one-node clusters (both servers cluster-enabled)")
    ap.add_argument("--dcache", help="a dcache binary already built (default: build it here)")
    args = ap.parse_args()
    if os.cpu_count() < 2:
        sys.exit("needs two cores: servers on core 0, the load generator on core 1")
    if args.dcache:
        dcache = os.path.abspath(args.dcache)
    else:
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "dcache"], cwd=ROOT, check=True)
        dcache = os.path.join(ROOT, "target", "release", "dcache")
    info = machine()
    print(f"Machine: {info['cpu']}, {info['cores']} cores, Linux {info['kernel']}; "
          f"redis-server {info['redis-server']}.")
    tables = []
    if args.part in ("memory", "both"):
        types = args.types.split(",")
        unknown = [t for t in types if t not in TYPES]
        if unknown:
            sys.exit(f"unknown types {unknown}; known: {', '.join(TYPES)}")
        tables.append(memory(dcache, args.keys, args.elements, types, args.cluster))
    if args.part in ("cpu", "both"):
        tables.append(cpu(dcache, args.requests, args.rounds))
    if args.part == "ratelimit":
        tables.append(ratelimit(dcache, args.requests, args.rounds))
    print()
    print("\n\n".join(tables))


if __name__ == "__main__":
    main()

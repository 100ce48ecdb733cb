#!/usr/bin/env python3
"""Side-by-side: a dcache node and redis-server on the same machine, in the same run.

Both servers run on loopback, pinned to the same core (core 0); redis-benchmark runs on another
core (core 1). Each server is preloaded with the same 1,000,000 keys (key:000000000000 …,
64-byte values), then GET and SET are measured with `redis-benchmark -c 50 -d 64`, at pipeline
1 and 16, interleaved over several rounds. For every run it records ops/s, p50/p99 latency and
the server's CPU time per request (utime + stime from /proc/PID/stat, the stable figure on a
shared machine). It also records resident bytes per key after the preload.

Usage: python3 bench/compare_redis.py [--requests N] [--rounds R] [--keys K] [--markdown FILE]
Installs redis-server and redis-tools from Debian when they are missing. Every server it starts,
it stops.
"""

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TICKS = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ensure_tools():
    if shutil.which("redis-server") and shutil.which("redis-benchmark"):
        return
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", "redis-server", "redis-tools"], check=True)


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def wait_ready(port, proc, seconds=30):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit(f"server on port {port} exited with {proc.returncode}")
        r = subprocess.run(["redis-cli", "-p", str(port), "PING"], capture_output=True, text=True)
        if r.stdout.strip() == "PONG":
            return
        time.sleep(0.05)
    sys.exit(f"server on port {port} never answered PING")


def preload(port, keys):
    """Writes key:%012d for 0 <= i < keys with 64-byte values, through redis-cli --pipe."""
    value = b"x" * 64
    chunks = []
    for i in range(keys):
        key = b"key:%012d" % i
        chunks.append(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$64\r\n%s\r\n" % (len(key), key, value))
    data = b"".join(chunks)
    r = subprocess.run(["redis-cli", "-p", str(port), "--pipe"], input=data, capture_output=True)
    if r.returncode != 0:
        sys.exit(f"preload failed: {r.stdout!r} {r.stderr!r}")
    n = subprocess.run(["redis-cli", "-p", str(port), "DBSIZE"], capture_output=True, text=True)
    if int(n.stdout.strip()) != keys:
        sys.exit(f"preload wrote {n.stdout.strip()} keys, expected {keys}")


def bench(port, pid, test, pipeline, requests, keys):
    before = cpu_ticks(pid)
    r = subprocess.run(
        ["taskset", "-c", "1", "redis-benchmark", "-p", str(port), "-c", "50", "-d", "64",
         "-r", str(keys), "-n", str(requests), "-P", str(pipeline), "-t", test, "--csv", "-q"],
        capture_output=True, text=True, check=True)
    cpu = (cpu_ticks(pid) - before) / TICKS
    line = [l for l in r.stdout.splitlines() if l.startswith('"' + test.upper())][0]
    fields = [f.strip('"') for f in line.split(",")]
    return {"ops": float(fields[1]), "p50": float(fields[4]), "p99": float(fields[6]),
            "cpu_us": cpu * 1e6 / requests}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--keys", type=int, default=1_000_000)
    ap.add_argument("--markdown", help="append the tables to this file")
    args = ap.parse_args()
    ensure_tools()
    subprocess.run(["cargo", "build", "--release", "-q"], cwd=ROOT, check=True)
    dcache = os.path.join(ROOT, "target", "release", "dcache")

    servers = {}
    procs = []
    try:
        rport, dport = free_port(), free_port()
        redis = subprocess.Popen(
            ["taskset", "-c", "0", "redis-server", "--port", str(rport), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)
        procs.append(redis)
        node = subprocess.Popen(
            ["taskset", "-c", "0", dcache, "node", str(dport), "--threads", "1",
             "--log-level", "warn"], stdout=subprocess.DEVNULL)
        procs.append(node)
        servers = {"redis": (rport, redis.pid), "dcache": (dport, node.pid)}
        memory = {}
        for name, (port, pid) in servers.items():
            wait_ready(port, procs[0] if name == "redis" else procs[1])
            base = rss_bytes(pid)
            preload(port, args.keys)
            memory[name] = (rss_bytes(pid) - base) / args.keys
            print(f"{name}: {memory[name]:.1f} resident bytes per key", flush=True)

        results = {}
        for rnd in range(args.rounds):
            for test in ("get", "set"):
                for pipeline in (1, 16):
                    for name, (port, pid) in servers.items():
                        r = bench(port, pid, test, pipeline, args.requests, args.keys)
                        results.setdefault((name, test, pipeline), []).append(r)
                        print(f"round {rnd + 1} {name:6} {test.upper()} P{pipeline:<2} "
                              f"{r['ops']:>10.0f} ops/s  p50 {r['p50']:.3f} ms  p99 {r['p99']:.3f} ms  "
                              f"cpu {r['cpu_us']:.3f} us/req", flush=True)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=30)

    def med(name, test, pipeline, field):
        return statistics.median(r[field] for r in results[(name, test, pipeline)])

    lines = [
        "| workload | server | ops/s | p50 ms | p99 ms | server CPU µs/request | dcache ÷ redis (CPU/request) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for test in ("get", "set"):
        for pipeline in (1, 16):
            ratio = med("dcache", test, pipeline, "cpu_us") / med("redis", test, pipeline, "cpu_us")
            for name in ("redis", "dcache"):
                lines.append(
                    f"| {test.upper()} P{pipeline} | {name} | {med(name, test, pipeline, 'ops'):,.0f} | "
                    f"{med(name, test, pipeline, 'p50'):.3f} | {med(name, test, pipeline, 'p99'):.3f} | "
                    f"{med(name, test, pipeline, 'cpu_us'):.3f} | {ratio:.2f} |" if name == "dcache" else
                    f"| {test.upper()} P{pipeline} | {name} | {med(name, test, pipeline, 'ops'):,.0f} | "
                    f"{med(name, test, pipeline, 'p50'):.3f} | {med(name, test, pipeline, 'p99'):.3f} | "
                    f"{med(name, test, pipeline, 'cpu_us'):.3f} | |")
    lines += [
        "",
        "| server | resident bytes per key (1,000,000 keys, 16-byte keys, 64-byte values) | dcache ÷ redis |",
        "|---|---:|---:|",
        f"| redis | {memory['redis']:.1f} | |",
        f"| dcache | {memory['dcache']:.1f} | {memory['dcache'] / memory['redis']:.2f} |",
    ]
    table = "\n".join(lines)
    print()
    print(table)
    if args.markdown:
        with open(args.markdown, "a") as f:
            f.write(table + "\n")


if __name__ == "__main__":
    main()

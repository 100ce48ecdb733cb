#!/usr/bin/env python3
"""Side by side: dcache against redis-server and memcached, on this machine, in one run.

Every server runs on loopback with one thread, no persistence, pinned to core 0; the load
generator (`dcache bench`, the same one for every server: RESP for dcache and Redis, the text
protocol for memcached) runs pinned to core 1. Two dcache nodes run: one with the default eviction
policy and one with allkeys-lru, so that the default policy's cost is measured against LRU's.

1. Memory: each server is loaded with the same 1,000,000 keys (16-byte keys, 64-byte values) and
   its resident set growth per key is recorded.
2. Throughput: for each value size (64 B, then 1 KiB, every key rewritten first), the workloads
   GET and SET x pipeline 1 and 16 x uniform and Zipf(0.99) keys run with 50 connections for
   `--seconds` each, servers and workloads interleaved, over `--rounds` rounds. Each run records
   ops/s, p50/p99 latency and the server's CPU time per request (utime + stime from
   /proc/PID/stat: the stable figure on a shared machine). Tables show medians over the rounds.

Writes the tables between the markers in docs/PERFORMANCE.md, the raw figures to
docs/perf/compare.json and a chart to docs/perf/compare.png. Installs redis-server, redis-tools
and memcached from Debian, and matplotlib with pip, when they are missing. Every server it starts,
it stops; every load run is bounded in time.

Usage: python3 bench/compare.py [--rounds 3] [--seconds 2] [--keys 1000000]
       [--dcache PATH] [--memory-only]
"""

import argparse
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import time

from markers import replace_between

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TICKS = os.sysconf("SC_CLK_TCK")
PERF_DOC = os.path.join(ROOT, "docs", "PERFORMANCE.md")
OUT_DIR = os.path.join(ROOT, "docs", "perf")
BEGIN, END = "<!-- compare.py:begin -->", "<!-- compare.py:end -->"


def ensure_tools():
    missing = [p for p, exe in (("redis-server", "redis-server"), ("redis-tools", "redis-cli"),
                                ("memcached", "memcached")) if not shutil.which(exe)]
    if missing:
        sudo = [] if os.geteuid() == 0 else ["sudo"]
        subprocess.run(sudo + ["apt-get", "update", "-qq"], check=True)
        subprocess.run(sudo + ["apt-get", "install", "-y", "-qq"] + missing, check=True)
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "matplotlib"], check=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


class Server:
    def __init__(self, name, protocol, argv, port):
        self.name, self.protocol, self.port = name, protocol, port
        self.proc = subprocess.Popen(["taskset", "-c", "0"] + argv, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        self.wait_ready()

    def wait_ready(self, seconds=30):
        probe = b"version\r\n" if self.protocol == "memcache" else b"PING\r\n"
        deadline = time.time() + seconds
        while time.time() < deadline:
            if self.proc.poll() is not None:
                sys.exit(f"{self.name} exited with {self.proc.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(probe)
                    if s.recv(64):
                        return
            except OSError:
                time.sleep(0.05)
        sys.exit(f"{self.name} never answered on port {self.port}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_servers(dcache):
    servers = []
    port = free_port()
    servers.append(Server("redis", "resp", [
        "redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
        "--appendonly", "no"], port))
    port = free_port()
    user = ["-u", "root"] if os.geteuid() == 0 else []
    servers.append(Server("memcached", "memcache", [
        "memcached", "-l", "127.0.0.1", "-p", str(port), "-U", "0", "-t", "1", "-m", "4096",
        "-c", "4096"] + user, port))
    port = free_port()
    # A single node against a single (non-cluster) Redis: as an independent node, like Redis
    # here (cluster routing and its bus are measured in bench/migration.py).
    servers.append(Server("dcache", "resp", [
        dcache, "node", str(port), "--threads", "1", "--log-level", "warn",
        "--cluster-enabled", "no"], port))
    port = free_port()
    servers.append(Server("dcache-lru", "resp", [
        dcache, "node", str(port), "--threads", "1", "--log-level", "warn",
        "--cluster-enabled", "no", "--maxmemory-policy", "allkeys-lru"], port))
    return servers


def run_bench(dcache, server, extra):
    argv = ["taskset", "-c", "1", dcache, "bench", "--server", f"127.0.0.1:{server.port}",
            "--protocol", server.protocol, "--json"] + extra
    before = cpu_ticks(server.proc.pid)
    r = subprocess.run(argv, capture_output=True, text=True)
    cpu = (cpu_ticks(server.proc.pid) - before) / TICKS
    if r.returncode != 0:
        sys.exit(f"dcache bench against {server.name} failed: {r.stderr.strip()}")
    report = json.loads(r.stdout)
    report["cpu_us"] = cpu * 1e6 / max(report["requests"], 1)
    return report


def preload(dcache, server, keys, value_size):
    run_bench(dcache, server, ["--preload", "--keys", str(keys), "--value-size", str(value_size),
                               "--requests", "0", "--connections", "50"])


WORKLOADS = [(test, pipeline, dist)
             for test in ("GET", "SET") for pipeline in (1, 16) for dist in ("uniform", "zipf:0.99")]
VALUE_SIZES = (64, 1024)


def machine():
    model = "unknown CPU"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    versions = {}
    for name, argv in (("redis-server", ["redis-server", "--version"]),
                       ("memcached", ["memcached", "-V"])):
        out = subprocess.run(argv, capture_output=True, text=True).stdout.split()
        versions[name] = next((w.split("=")[-1] for w in out if w[:1].isdigit() or "v=" in w), "?")
    return {"cpu": model, "cores": os.cpu_count(), "kernel": platform.release(), **versions}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--keys", type=int, default=1_000_000)
    ap.add_argument("--no-write", action="store_true", help="print only; leave docs/ alone")
    ap.add_argument("--dcache", help="a dcache binary already built (default: build it here)")
    ap.add_argument("--memory-only", action="store_true",
                    help="only the resident bytes per key (step 1); print them, write nothing")
    ap.add_argument("--chart-only", action="store_true",
                    help="redraw docs/perf/compare.png from docs/perf/compare.json; run nothing")
    args = ap.parse_args()
    if args.chart_only:
        with open(os.path.join(OUT_DIR, "compare.json")) as f:
            result = json.load(f)
        names = list(result["memory_bytes_per_key"])
        chart(result, names, os.path.join(OUT_DIR, "compare.png"))
        return
    if os.cpu_count() < 2:
        sys.exit("needs two cores: servers on core 0, the load generator on core 1")
    ensure_tools()
    if args.dcache:
        dcache = os.path.abspath(args.dcache)
    else:
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "dcache"], cwd=ROOT, check=True)
        dcache = os.path.join(ROOT, "target", "release", "dcache")

    servers = start_servers(dcache)
    memory, runs = {}, []
    try:
        for s in servers:
            base = rss_bytes(s.proc.pid)
            preload(dcache, s, args.keys, 64)
            memory[s.name] = (rss_bytes(s.proc.pid) - base) / args.keys
            print(f"{s.name:10} {memory[s.name]:7.1f} resident bytes per key", flush=True)
        if args.memory_only:
            return
        for value_size in VALUE_SIZES:
            if value_size != 64:
                for s in servers:
                    preload(dcache, s, args.keys, value_size)
            for rnd in range(args.rounds):
                for test, pipeline, dist in WORKLOADS:
                    for s in servers:
                        r = run_bench(dcache, s, [
                            "--connections", "50", "--pipeline", str(pipeline),
                            "--keys", str(args.keys), "--distribution", dist,
                            "--value-size", str(value_size),
                            "--reads", "1" if test == "GET" else "0",
                            "--duration", str(args.seconds), "--seed", str(rnd + 1)])
                        run = {"server": s.name, "test": test, "pipeline": pipeline,
                               "distribution": dist, "value_size": value_size, "round": rnd + 1,
                               "ops": r["ops_per_sec"], "p50": r["latency_ms"]["p50"],
                               "p99": r["latency_ms"]["p99"], "cpu_us": r["cpu_us"],
                               "errors": r["errors"], "hit_ratio": r["hit_ratio"]}
                        runs.append(run)
                        print(f"round {rnd + 1} {s.name:10} {test} P{pipeline:<2} {dist:10} "
                              f"{value_size:>4} B {run['ops']:>9.0f} ops/s p50 {run['p50']:.3f} "
                              f"p99 {run['p99']:.3f} ms cpu {run['cpu_us']:.3f} us/req", flush=True)
                        if run["errors"]:
                            sys.exit(f"{s.name} answered {run['errors']} errors")
    finally:
        for s in servers:
            s.stop()

    names = [s.name for s in servers]
    info = machine()
    result = {"machine": info, "args": vars(args), "memory_bytes_per_key": memory, "runs": runs}
    table = markdown(result, names)
    print()
    print(table)
    if not args.no_write:
        os.makedirs(OUT_DIR, exist_ok=True)
        with open(os.path.join(OUT_DIR, "compare.json"), "w") as f:
            json.dump(result, f, indent=1)
        chart(result, names, os.path.join(OUT_DIR, "compare.png"))
        replace_between(PERF_DOC, BEGIN, END, table)
        print("\nwrote docs/PERFORMANCE.md, docs/perf/compare.json, docs/perf/compare.png")


def medians(runs, names):
    """{(test, pipeline, dist, value_size): {server: {field: median}}}"""
    out = {}
    for run in runs:
        key = (run["test"], run["pipeline"], run["distribution"], run["value_size"])
        out.setdefault(key, {}).setdefault(run["server"], []).append(run)
    return {key: {name: {f: statistics.median(r[f] for r in rs[name])
                         for f in ("ops", "p50", "p99", "cpu_us")}
                  for name in names}
            for key, rs in out.items()}


def markdown(result, names):
    info, args = result["machine"], result["args"]
    med = medians(result["runs"], names)
    lines = [
        f"Machine: {info['cpu']}, {info['cores']} cores, Linux {info['kernel']}; "
        f"redis-server {info['redis-server']}, memcached {info['memcached']}. "
        f"{args['rounds']} rounds of {args['seconds']:g} s per workload and server, medians; "
        f"50 connections, {args['keys']:,} keys, 16-byte keys.",
        "",
        "| workload | " + " | ".join(f"{n} ops/s" for n in names)
        + " | " + " | ".join(f"{n} CPU µs/req" for n in names)
        + " | dcache ÷ redis | dcache ÷ memcached | dcache ÷ dcache-lru |",
        "|---|" + "---:|" * (2 * len(names) + 3),
    ]
    ratios = {"redis": [], "memcached": [], "dcache-lru": []}
    for key in sorted(med, key=lambda k: (k[3], k[0], k[1], k[2])):
        test, pipeline, dist, size = key
        m = med[key]
        row = [f"{test} P{pipeline} {dist} {size} B"]
        row += [f"{m[n]['ops']:,.0f}" for n in names]
        row += [f"{m[n]['cpu_us']:.2f}" for n in names]
        for ref in ratios:
            r = m["dcache"]["cpu_us"] / m[ref]["cpu_us"]
            ratios[ref].append(r)
            row.append(f"{r:.2f}")
        lines.append("| " + " | ".join(row) + " |")
    lines += [
        "",
        "Latency (ms, p50 / p99, measured by the load generator, which shares the machine):",
        "",
        "| workload | " + " | ".join(names) + " |",
        "|---|" + "---:|" * len(names),
    ]
    for key in sorted(med, key=lambda k: (k[3], k[0], k[1], k[2])):
        test, pipeline, dist, size = key
        lines.append(f"| {test} P{pipeline} {dist} {size} B | " + " | ".join(
            f"{med[key][n]['p50']:.3f} / {med[key][n]['p99']:.3f}" for n in names) + " |")
    mem = result["memory_bytes_per_key"]
    lines += [
        "",
        "| server | resident bytes per key (1,000,000 keys, 64-byte values) | dcache ÷ it |",
        "|---|---:|---:|",
    ] + [f"| {n} | {mem[n]:.1f} | {mem['dcache'] / mem[n]:.2f} |" for n in names]
    geo = {ref: statistics.geometric_mean(v) for ref, v in ratios.items()}
    lines += [
        "",
        f"Server CPU per request, geometric mean over the {len(med)} workloads: dcache ÷ redis "
        f"{geo['redis']:.2f}, dcache ÷ memcached {geo['memcached']:.2f}, default policy ÷ LRU "
        f"{geo['dcache-lru']:.2f} (worst single workload "
        f"{max(ratios['dcache-lru']):.2f}).",
    ]
    return "\n".join(lines)


def chart(result, names, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    med = medians(result["runs"], names)
    keys = sorted(med, key=lambda k: (k[3], k[0], k[1], k[2]))
    labels = [f"{t} P{p}\n{'zipf' if d.startswith('zipf') else 'unif'} {s}B"
              for t, p, d, s in keys]
    fig, axes = plt.subplots(3, 1, figsize=(16, 12), sharex=True)
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        xs = [x + (i - (len(names) - 1) / 2) * width for x in range(len(keys))]
        axes[0].bar(xs, [med[k][name]["cpu_us"] for k in keys], width, label=name)
        axes[1].bar(xs, [med[k][name]["ops"] / 1000 for k in keys], width, label=name)
    refs = [n for n in names if n != "dcache"]
    width = 0.8 / len(refs)
    for i, ref in enumerate(refs):
        xs = [x + (i - (len(refs) - 1) / 2) * width for x in range(len(keys))]
        axes[2].bar(xs, [med[k]["dcache"]["cpu_us"] / med[k][ref]["cpu_us"] for k in keys],
                    width, label=f"dcache ÷ {ref}")
    axes[2].axhline(1.0, color="black", linewidth=0.8)
    axes[0].set_ylabel("server CPU µs per request\n(lower is better)")
    axes[1].set_ylabel("thousand ops/s\n(higher is better)")
    axes[2].set_ylabel("CPU per request, ratio\n(below 1: dcache cheaper)")
    axes[2].set_xticks(range(len(keys)))
    axes[2].set_xticklabels(labels, fontsize=8)
    axes[0].legend()
    axes[2].legend()
    axes[0].set_title(f"dcache, redis-server and memcached, one core each "
                      f"({result['machine']['cpu']}); medians of {result['args']['rounds']} rounds")
    for ax in axes:
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=80)


if __name__ == "__main__":
    main()

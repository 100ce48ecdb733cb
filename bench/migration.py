#!/usr/bin/env python3
"""Slot migration, side by side: dcache against a real Redis Cluster, on this machine.

For each server (Redis first, then dcache, or the one named by --only):

1. Start a 3-node cluster on loopback (`redis-server --cluster-enabled yes` and
   `redis-cli --cluster create`; or `dcache node` x 3, the second and third `--join`ing the first),
   each node capped with `--maxmemory`, one thread each (`dcache node --threads 1`, as Redis).
2. Load the same `--keys` keys (`key:0000000`..., `--value-size`-byte values) through the cluster
   protocol, pipelined per node, and check every node's DBSIZE adds up to `--keys`.
3. Start a latency probe (a separate process): one connection per node, a fixed rate of
   `--rate` requests a second, alternating GET and SET on uniformly random loaded keys, following
   -MOVED / -ASK / -TRYAGAIN / -CLUSTERDOWN as a cluster client must. Each request's latency is
   measured from its scheduled start (so a stall counts for every request that should have been
   sent during it: no coordinated omission), and includes its redirects and retries.
4. After `--before` seconds, add a fourth, empty node and move a quarter of the slots to it:
   Redis: `redis-cli --cluster add-node`, wait until `redis-cli --cluster check` agrees, then
   `redis-cli --cluster rebalance --cluster-use-empty-masters`.
   dcache: `dcache node --join` (a join starts the move); done when the new node serves 4096
   slots and `CLUSTER INFO` says `cluster_slots_migrating:0` on every node.
   The clock runs from starting the fourth server process to done.
5. Keep the probe running `--after` seconds, then stop it, check the keys add up to `--keys` again
   and count the keys the new node holds.

Prints, per server: keys moved, seconds, MB/s (moved keys x (key + value bytes)), the new node's
used_memory, and probe latency p50/p99/p99.9/max before the move against during it, plus the
probe's errors and redirects. `--json FILE` writes every figure. Every server it starts it stops;
every wait is bounded.

Usage: python3 bench/migration.py --dcache target/release/dcache [--keys 1000000]
       [--value-size 100] [--rate 2000] [--only redis|dcache] [--pipeline 10]
       [--migration-rate 4mb] [--json FILE] [--keep]
"""

import argparse
import json
import multiprocessing
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time

SLOTS = 16384


_TABLE = []


def _table():
    if not _TABLE:
        for i in range(256):
            crc = i << 8
            for _ in range(8):
                crc = ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
            _TABLE.append(crc)
    return _TABLE


def keyslot(key):
    s = key.find(b"{")
    if s >= 0:
        e = key.find(b"}", s + 1)
        if e > s + 1:
            key = key[s + 1:e]
    t = _table()
    crc = 0
    for b in key:
        crc = ((crc << 8) & 0xFFFF) ^ t[((crc >> 8) ^ b) & 0xFF]
    return crc % SLOTS


def key_name(i):
    return b"key:%07d" % i


def encode(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if isinstance(a, str):
            a = a.encode()
        elif isinstance(a, int):
            a = b"%d" % a
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class Error(Exception):
    pass


class Conn:
    """One RESP2 connection: replies as bytes, ints, lists or Error."""

    def __init__(self, port, host="127.0.0.1", timeout=30):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.pos = 0

    def close(self):
        self.sock.close()

    def _fill(self):
        data = self.sock.recv(1 << 20)
        if not data:
            raise ConnectionError("connection closed")
        self.buf = self.buf[self.pos:] + data
        self.pos = 0

    def _line(self):
        while True:
            i = self.buf.find(b"\r\n", self.pos)
            if i >= 0:
                line = self.buf[self.pos:i]
                self.pos = i + 2
                return line
            self._fill()

    def read(self):
        line = self._line()
        t, rest = line[:1], line[1:]
        if t == b"+":
            return rest
        if t == b"-":
            return Error(rest.decode())
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            if n < 0:
                return None
            while len(self.buf) - self.pos < n + 2:
                self._fill()
            v = self.buf[self.pos:self.pos + n]
            self.pos += n + 2
            return v
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self.read() for _ in range(n)]
        raise ConnectionError(f"bad reply {line!r}")

    def call(self, *args):
        self.sock.sendall(encode(*args))
        return self.read()


def info_fields(conn, section):
    text = conn.call("INFO", section)
    return dict(line.split(":", 1) for line in text.decode().splitlines() if ":" in line)


def cluster_info(conn):
    text = conn.call("CLUSTER", "INFO")
    return dict(line.split(":", 1) for line in text.decode().splitlines() if ":" in line)


def slot_map(port):
    """slot -> client port, from CLUSTER SLOTS of the node on `port`."""
    c = Conn(port)
    try:
        ranges = c.call("CLUSTER", "SLOTS")
    finally:
        c.close()
    owner = [None] * SLOTS
    for r in ranges:
        for s in range(r[0], r[1] + 1):
            owner[s] = r[2][1]
    return owner


def wait_port(port, proc, seconds=30):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            sys.exit(f"server on port {port} exited with {proc.returncode}")
        try:
            c = Conn(port, timeout=1)
            if c.call("PING") == b"PONG":
                c.close()
                return
            c.close()
        except OSError:
            pass
        time.sleep(0.05)
    sys.exit(f"nothing answered on port {port}")


def free_ports(n):
    """n client ports whose bus ports (port + 10000) are free too."""
    ports = []
    while len(ports) < n:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            p = s.getsockname()[1]
        if p + 10000 > 65535 or p in ports:
            continue
        try:
            with socket.socket() as s:
                s.bind(("127.0.0.1", p + 10000))
        except OSError:
            continue
        ports.append(p)
    return ports


# ---------------------------------------------------------------------------------------------
# The two clusters


class RedisCluster:
    name = "redis"

    def __init__(self, args, workdir):
        self.args, self.dir = args, workdir
        self.ports = free_ports(4)
        self.procs = []

    def start_node(self, port):
        argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                "--cluster-enabled", "yes",
                "--cluster-config-file", os.path.join(self.dir, f"nodes-{port}.conf"),
                "--dir", self.dir, "--save", "", "--appendonly", "no",
                "--maxmemory", self.args.maxmemory, "--logfile",
                os.path.join(self.dir, f"redis-{port}.log")]
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(proc)
        wait_port(port, proc)
        return proc

    def start(self):
        for p in self.ports[:3]:
            self.start_node(p)
        subprocess.run(["redis-cli", "--cluster", "create"]
                       + [f"127.0.0.1:{p}" for p in self.ports[:3]] + ["--cluster-yes"],
                       check=True, stdout=subprocess.DEVNULL, timeout=120)
        self.wait_agreed(self.ports[:3])

    def wait_agreed(self, ports, seconds=60):
        deadline = time.time() + seconds
        while time.time() < deadline:
            r = subprocess.run(["redis-cli", "--cluster", "check", f"127.0.0.1:{ports[0]}"],
                               capture_output=True, text=True, timeout=60)
            ok = (r.returncode == 0 and "[OK] All 16384 slots covered" in r.stdout
                  and "don't agree" not in r.stdout)
            if ok:
                infos = []
                for p in ports:
                    c = Conn(p)
                    infos.append(cluster_info(c))
                    c.close()
                if all(i["cluster_state"].strip() == "ok"
                       and int(i["cluster_known_nodes"]) == len(ports) for i in infos):
                    return
            time.sleep(0.2)
        sys.exit("redis cluster never agreed")

    def grow(self):
        """Add the fourth node and move a quarter of the slots to it; returns timings."""
        t0 = time.time()
        p4 = self.ports[3]
        self.start_node(p4)
        subprocess.run(["redis-cli", "--cluster", "add-node", f"127.0.0.1:{p4}",
                        f"127.0.0.1:{self.ports[0]}"], check=True, stdout=subprocess.DEVNULL,
                       timeout=120)
        self.wait_agreed(self.ports)
        t1 = time.time()
        argv = ["redis-cli", "--cluster", "rebalance", f"127.0.0.1:{self.ports[0]}",
                "--cluster-use-empty-masters"]
        if self.args.pipeline:
            argv += ["--cluster-pipeline", str(self.args.pipeline)]
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, timeout=1800)
        t2 = time.time()
        return {"total_s": t2 - t0, "join_s": t1 - t0, "move_s": t2 - t1,
                "command": " ".join(argv)}

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


class DcacheCluster:
    name = "dcache"

    def __init__(self, args, workdir):
        self.args, self.dir = args, workdir
        self.ports = free_ports(4)
        self.procs = []

    def start_node(self, port, join=None):
        argv = [self.args.dcache, "node", str(port), "--threads", str(self.args.threads),
                "--maxmemory", self.args.maxmemory, "--log-level", self.args.log_level,
                "--dir", os.path.join(self.dir, str(port))]
        if join:
            argv += ["--join", f"127.0.0.1:{join}"]
        if self.args.migration_rate:
            argv += ["--migration-rate", self.args.migration_rate]
        log = open(os.path.join(self.dir, f"dcache-{port}.log"), "w")
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        wait_port(port, proc)
        return proc

    def settled(self, ports, quota):
        """Every node agrees: `quota` slots each, all served, nothing migrating."""
        for p in ports:
            c = Conn(p)
            try:
                ci = cluster_info(c)
                served = int(info_fields(c, "cluster")["cluster_slots_served"])
            finally:
                c.close()
            if (ci["cluster_state"].strip() != "ok" or int(ci["cluster_slots_migrating"]) != 0
                    or int(ci["cluster_known_nodes"]) != len(ports)
                    or abs(served - quota) > 1):
                return False
        return True

    def wait_settled(self, ports, seconds=600):
        quota = SLOTS / len(ports)
        deadline = time.time() + seconds
        while time.time() < deadline:
            if self.settled(ports, quota):
                return
            time.sleep(0.05)
        sys.exit(f"dcache cluster of {ports} never settled")

    def start(self):
        self.start_node(self.ports[0])
        for n, p in enumerate(self.ports[1:3], start=2):
            self.start_node(p, join=self.ports[0])
            self.wait_settled(self.ports[:n])

    def grow(self):
        t0 = time.time()
        self.start_node(self.ports[3], join=self.ports[0])
        self.wait_settled(self.ports)
        t2 = time.time()
        return {"total_s": t2 - t0, "move_s": t2 - t0,
                "command": f"dcache node {self.ports[3]} --join 127.0.0.1:{self.ports[0]}"}

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


# ---------------------------------------------------------------------------------------------
# Load, count, probe


def load(ports, keys, value_size, batch=1000):
    owner = slot_map(ports[0])
    conns = {p: Conn(p) for p in ports}
    value = b"v" * value_size
    pending = {p: [] for p in ports}

    def flush(p):
        cmds = pending[p]
        if not cmds:
            return
        conns[p].sock.sendall(b"".join(encode(b"SET", k, value) for k in cmds))
        for k in cmds:
            r = conns[p].read()
            if r != b"OK":
                sys.exit(f"SET {k!r} on {p}: {r}")
        pending[p] = []

    for i in range(keys):
        k = key_name(i)
        p = owner[keyslot(k)]
        pending[p].append(k)
        if len(pending[p]) >= batch:
            flush(p)
    for p in ports:
        flush(p)
    for c in conns.values():
        c.close()


def counts(ports):
    out = {}
    for p in ports:
        c = Conn(p)
        out[p] = (c.call("DBSIZE"), int(info_fields(c, "memory")["used_memory"]))
        c.close()
    return out


def probe(seed_port, keys, value_size, rate, seconds, out_path, stop):
    """Fixed-rate GET/SET through the cluster protocol; writes (start, latency, op) rows."""
    rng = random.Random(7)
    owner = slot_map(seed_port)
    conns = {}
    value = b"p" * value_size
    rows = []
    stats = {"moved": 0, "ask": 0, "tryagain": 0, "clusterdown": 0, "errors": 0}
    errors = []

    def conn(p):
        if p not in conns:
            conns[p] = Conn(p, timeout=10)
        return conns[p]

    t0 = time.perf_counter()
    interval = 1.0 / rate
    i = 0
    while True:
        scheduled = t0 + i * interval
        now = time.perf_counter()
        if scheduled - t0 > seconds or (i % 64 == 0 and stop.is_set()):
            break
        if scheduled > now:
            time.sleep(scheduled - now)
        sent = time.perf_counter()
        k = key_name(rng.randrange(keys))
        is_set = i % 2 == 1
        cmd = encode(b"SET", k, value) if is_set else encode(b"GET", k)
        slot = keyslot(k)
        target, asking = owner[slot], False
        for _attempt in range(100):
            c = conn(target)
            c.sock.sendall((encode(b"ASKING") + cmd) if asking else cmd)
            if asking:
                c.read()
            r = c.read()
            asking = False
            if isinstance(r, Error):
                msg = str(r)
                if msg.startswith("MOVED"):
                    stats["moved"] += 1
                    target = int(msg.split()[2].rsplit(":", 1)[1])
                    owner[slot] = target
                    continue
                if msg.startswith("ASK"):
                    stats["ask"] += 1
                    target, asking = int(msg.split()[2].rsplit(":", 1)[1]), True
                    continue
                if msg.startswith("TRYAGAIN"):
                    stats["tryagain"] += 1
                    time.sleep(0.001)
                    continue
                if msg.startswith("CLUSTERDOWN"):
                    stats["clusterdown"] += 1
                    time.sleep(0.001)
                    continue
                stats["errors"] += 1
                if len(errors) < 5:
                    errors.append(msg)
            break
        else:
            stats["errors"] += 1
        done = time.perf_counter()
        # (scheduled start, latency from it, SET?, node that answered, time from the send)
        rows.append((scheduled - t0, done - scheduled, 1 if is_set else 0, target, done - sent))
        i += 1
    with open(out_path, "w") as f:
        json.dump({"t0_wall": time.time() - (time.perf_counter() - t0), "rows": rows,
                   "stats": stats, "error_samples": errors}, f)


TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def percentiles(lat):
    lat = sorted(lat)
    if not lat:
        return {}

    def q(p):
        return lat[min(len(lat) - 1, int(p * len(lat)))] * 1000

    return {"n": len(lat), "p50": q(0.50), "p99": q(0.99), "p999": q(0.999), "max": lat[-1] * 1000}


def run(cluster_cls, args):
    workdir = tempfile.mkdtemp(prefix=f"migration-{cluster_cls.name}-")
    cl = cluster_cls(args, workdir)
    result = {"server": cl.name}
    try:
        cl.start()
        t = time.time()
        load(cl.ports[:3], args.keys, args.value_size)
        result["load_s"] = time.time() - t
        before = counts(cl.ports[:3])
        total = sum(n for n, _ in before.values())
        print(f"{cl.name}: loaded {total} keys in {result['load_s']:.1f} s "
              f"({', '.join(f'{p}: {n}' for p, (n, _) in before.items())})", flush=True)
        if total != args.keys:
            sys.exit(f"{cl.name}: {total} keys after loading {args.keys}")
        probe_out = os.path.join(workdir, "probe.json")
        length = args.before + args.max_move + args.after
        stop = multiprocessing.Event()
        pr = multiprocessing.Process(target=probe, args=(
            cl.ports[0], args.keys, args.value_size, args.rate, length, probe_out, stop))
        pr.start()
        cpu_b = {p.pid: cpu_seconds(p.pid) for p in cl.procs}
        t_b = time.time()
        time.sleep(args.before + 0.5)  # the probe's first half second is its own warm-up
        cpu0 = {p.pid: cpu_seconds(p.pid) for p in cl.procs}
        # The servers' CPU per second before the move: the probe's load and the nodes' own
        # background work (Raft, failure detection, housekeeping).
        result["server_cpu_per_s_before"] = (
            sum(cpu0[pid] - cpu_b[pid] for pid in cpu0) / (time.time() - t_b))
        move_start = time.time()
        timing = cl.grow()
        move_end = time.time()
        result["server_cpu_s_during_move"] = sum(
            cpu_seconds(p.pid) - cpu0.get(p.pid, 0.0) for p in cl.procs)
        print(f"{cl.name}: moved in {timing['move_s']:.2f} s (total {timing['total_s']:.2f} s)",
              flush=True)
        time.sleep(args.after)
        stop.set()
        pr.join(30)
        if pr.is_alive():
            pr.terminate()
            pr.join()
        after = counts(cl.ports)
        total = sum(n for n, _ in after.values())
        moved_keys, new_mem = after[cl.ports[3]]
        result.update(timing)
        result.update({
            "keys_after": total, "moved_keys": moved_keys,
            "new_node_used_memory": new_mem,
            "moved_payload_bytes": moved_keys * (len(key_name(0)) + args.value_size),
            "slots_new_node": sum(1 for p in slot_map(cl.ports[0]) if p == cl.ports[3]),
            "used_memory_before": {str(p): m for p, (_, m) in before.items()},
            "used_memory_after": {str(p): m for p, (_, m) in after.items()},
        })
        result["payload_mb_per_s"] = result["moved_payload_bytes"] / 1e6 / timing["move_s"]
        result["used_memory_mb_per_s"] = new_mem / 1e6 / timing["move_s"]
        if os.path.exists(probe_out):
            with open(probe_out) as f:
                pd = json.load(f)
            rel_start = move_start - pd["t0_wall"]
            rel_end = move_end - pd["t0_wall"]
            rows = pd["rows"]
            # Before: the `--before` seconds up to the move, less the probe's first half second.
            b = [r[1] for r in rows if 0.5 <= r[0] < rel_start]
            d = [r[1] for r in rows if rel_start <= r[0] < rel_end]
            result["probe"] = {
                "rate": args.rate, "before": percentiles(b), "during": percentiles(d),
                "before_get": percentiles([r[1] for r in rows if 0.5 <= r[0] < rel_start and r[2] == 0]),
                "during_get": percentiles([r[1] for r in rows if rel_start <= r[0] < rel_end and r[2] == 0]),
                "before_set": percentiles([r[1] for r in rows if 0.5 <= r[0] < rel_start and r[2] == 1]),
                "during_set": percentiles([r[1] for r in rows if rel_start <= r[0] < rel_end and r[2] == 1]),
                "move_window_s": [rel_start, rel_end],
                # The slowest single answers during the move, by the node that gave them (the
                # time from sending, without the probe's own queueing behind them).
                "slowest_service_ms": sorted(
                    ((round(r[4] * 1000, 1), r[3], round(r[0], 3)) for r in rows
                     if rel_start <= r[0] < rel_end), reverse=True)[:10],
                "stats": pd["stats"], "error_samples": pd["error_samples"]}
        else:
            result["probe"] = None
            print(f"{cl.name}: the probe wrote nothing (move longer than --max-move?)")
        if total != args.keys:
            print(f"{cl.name}: WARNING {total} keys after the move, {args.keys} loaded", flush=True)
    finally:
        cl.stop()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    return result


def report(r):
    lines = [f"{r['server']}: {r['moved_keys']} keys ({r['slots_new_node']} slots) moved in "
             f"{r['move_s']:.2f} s = {r['payload_mb_per_s']:.1f} MB/s of keys+values "
             f"(new node used_memory {r['new_node_used_memory'] / 1e6:.1f} MB = "
             f"{r['used_memory_mb_per_s']:.1f} MB/s); keys after {r['keys_after']}; "
             f"server CPU during the move {r['server_cpu_s_during_move']:.2f} s "
             f"(before it: {r['server_cpu_per_s_before']:.2f} s a second)"]
    p = r.get("probe")
    if p:
        for part in ("", "_get", "_set"):
            b, d = p["before" + part], p["during" + part]
            if b and d:
                lines.append(
                    f"  probe{part or ' all'} at {p['rate']}/s: before p50 {b['p50']:.3f} p99 "
                    f"{b['p99']:.3f} p99.9 {b['p999']:.3f} max {b['max']:.1f} ms (n={b['n']}); "
                    f"during p50 {d['p50']:.3f} p99 {d['p99']:.3f} p99.9 {d['p999']:.3f} "
                    f"max {d['max']:.1f} ms (n={d['n']}); p99 ratio {d['p99'] / b['p99']:.2f}")
        lines.append(f"  probe redirects/errors: {p['stats']} {p['error_samples']}")
        lines.append(f"  slowest answers during the move (ms, node, at s): {p['slowest_service_ms']}")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dcache", default="target/release/dcache")
    ap.add_argument("--keys", type=int, default=1_000_000)
    ap.add_argument("--value-size", type=int, default=100)
    ap.add_argument("--maxmemory", default="1gb")
    ap.add_argument("--rate", type=int, default=2000, help="probe requests per second")
    ap.add_argument("--before", type=float, default=10.0, help="probe seconds before the move")
    ap.add_argument("--after", type=float, default=2.0, help="probe seconds after the move")
    ap.add_argument("--max-move", type=float, default=240.0,
                    help="the probe stops this long after the move starts at the latest")
    ap.add_argument("--pipeline", type=int, default=0,
                    help="redis-cli --cluster-pipeline (0: its default, 10 keys per MIGRATE)")
    ap.add_argument("--migration-rate", help="dcache node --migration-rate (each node)")
    ap.add_argument("--log-level", default="warn", help="dcache node --log-level")
    ap.add_argument("--threads", type=int, default=1,
                    help="dcache node --threads (1: as Redis's one thread; 0: one per core)")
    ap.add_argument("--only", choices=("redis", "dcache"))
    ap.add_argument("--json", help="write the results to this file")
    ap.add_argument("--keep", action="store_true", help="keep the nodes' directories and logs")
    args = ap.parse_args()
    for exe in ("redis-server", "redis-cli"):
        if not shutil.which(exe):
            sys.exit(f"needs {exe} (Debian: apt-get install redis-server redis-tools)")
    results = []
    for cls in (RedisCluster, DcacheCluster):
        if args.only and args.only != cls.name:
            continue
        r = run(cls, args)
        results.append(r)
        print(report(r), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "results": results}, f, indent=1)


if __name__ == "__main__":
    main()

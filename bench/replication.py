#!/usr/bin/env python3
"""Replication, side by side: dcache with one replica under each strategy against a real Redis
Cluster of 3 primaries and 3 replicas, on this machine, in one run.

Clusters (every server process pinned to core 0 with `taskset`, every load generator to core 1,
all on 127.0.0.1, one thread per server, no persistence):

- dcache: `dcache launch --nodes 3 --base-port 0 --threads 1 --maxmemory 1gb` with nothing more
  (no replica: the baseline), or with `--replicas 1 --replication primary --sync-replicas 1`,
  `... primary --sync-replicas 0` (asynchronous), `... quorum --write-quorum 2` or `... chain`.
  Three nodes: each is the primary of a third of the slots and holds a copy of another third.
- Redis: six `redis-server --cluster-enabled yes` and `redis-cli --cluster create ...
  --cluster-replicas 1` (3 primaries + 3 replicas), and three without `--cluster-replicas` for
  the baseline; the replicas' links must be up before anything is measured.

1. Throughput (`--rounds` rounds, the clusters interleaved: each round starts every cluster in
   turn, measures it, and stops it):
   - `redis-benchmark --cluster -t set -c 50 -P {1,16} -r 100000 -d 64 -n N` (the same tool for
     both systems: it reads CLUSTER NODES / CLUSTER SLOTS and sends each connection's keys to
     their primary): ops/s, p50, p99.
   - The same SETs from this script's own generator (one Python process, 50 connections spread
     over the primaries, keys routed by CLUSTER SLOTS, `--seconds` s), because redis-benchmark
     cannot send `WAIT 1 0` after each SET: Redis with and without the WAIT, and every dcache
     cluster without it (so that the WAIT's price is read against the same generator). Python is
     slower than the servers, so its figures compare with each other, not with redis-benchmark's.
   Server CPU per write: the sum of `utime + stime` (/proc/PID/stat) of every node of the
   cluster around the run, divided by the writes acknowledged.
2. Failover (`--failover-runs` runs per cluster, a fresh cluster each run, the victim rotating
   over the primaries): one writer (one connection per node, one SET at a time, new keys
   `fo:N` of the slots the victim is primary of, each value naming its key) writes for
   `--before` s, then the victim gets `kill -9`. The writer keeps going as a cluster client does:
   on `-MOVED` it follows, on a refused or broken connection or any other error it waits 10 ms,
   re-reads CLUSTER SLOTS from a live node, and tries the same key again. Failover time: from the
   kill to the first acknowledged write after it. It writes `--after` s more, then reads every
   acknowledged key back through the new slot map: a key missing or with another value is an
   acknowledged write lost. Redis runs with `cluster-node-timeout` 15000 (its default) and 2000;
   dcache with its default node timeout (2000 ms).

Writes docs/perf/replication.json (every run) and the tables between the markers in
docs/PERFORMANCE.md (unless --no-write). Every process it starts it stops, on errors too; every
wait is bounded.

Usage: python3 bench/replication.py [--dcache target/release/dcache] [--rounds 3]
       [--requests-p1 150000] [--requests-p16 600000] [--seconds 2] [--failover-runs 3]
       [--parts throughput,failover] [--only NAME,...] [--no-write]
"""

import argparse
import json
import multiprocessing
import os
import platform
import random
import select
import selectors
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import migration as m  # noqa: E402
from markers import replace_between  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PERF_DOC = os.path.join(ROOT, "docs", "PERFORMANCE.md")
OUT_JSON = os.path.join(ROOT, "docs", "perf", "replication.json")
BEGIN, END = "<!-- replication.py:begin -->", "<!-- replication.py:end -->"
SERVER_CPU, CLIENT_CPU = "0", "1"
KEYS, VALUE_SIZE, CONNECTIONS = 100_000, 64, 50

# name -> how the cluster is started. dcache: `dcache launch` flags; redis: replicas per primary
# and cluster-node-timeout.
DCACHE = {
    "dcache, no replica": [],
    "dcache primary K=1": ["--replicas", "1", "--replication", "primary", "--sync-replicas", "1"],
    "dcache primary K=0": ["--replicas", "1", "--replication", "primary", "--sync-replicas", "0"],
    "dcache quorum W=2": ["--replicas", "1", "--replication", "quorum", "--write-quorum", "2"],
    "dcache chain": ["--replicas", "1", "--replication", "chain"],
}
REDIS = {
    "redis, no replica": (0, 15000),
    "redis 3+3": (1, 15000),
}
FAILOVER = {
    "dcache primary K=1": None, "dcache primary K=0": None, "dcache quorum W=2": None,
    "dcache chain": None,
    "redis 3+3, node timeout 15000": (1, 15000),
    "redis 3+3, node timeout 2000": (1, 2000),
}
BASELINE = {"dcache": "dcache, no replica", "redis": "redis, no replica"}


def pinned(cpu, argv):
    return ["taskset", "-c", cpu] + argv


def alive(pid, name):
    """The process `pid` runs and is the program `name` (not a pid the system reused)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return name.encode() in f.read()
    except OSError:
        return False


def cluster_slots(port, timeout=2):
    """[(first, last, [port of each copy, primary first])] from CLUSTER SLOTS."""
    c = m.Conn(port, timeout=timeout)
    try:
        ranges = c.call("CLUSTER", "SLOTS")
    finally:
        c.close()
    if isinstance(ranges, m.Error):
        raise ConnectionError(str(ranges))
    return [(r[0], r[1], [n[1] for n in r[2:]]) for r in ranges]


def owners(ranges):
    owner = [None] * m.SLOTS
    for a, b, copies in ranges:
        for s in range(a, b + 1):
            owner[s] = copies[0]
    return owner


# ---------------------------------------------------------------------------------------------
# The clusters


class Dcache:
    system = "dcache"

    def __init__(self, args, name, flags, workdir):
        self.args, self.name, self.flags, self.dir = args, name, flags, workdir
        self.launcher, self.ports, self.pids = None, [], []

    def start(self):
        argv = [self.args.dcache, "launch", "--nodes", "3", "--base-port", "0", "--threads", "1",
                "--maxmemory", "1gb", "--log-dir", self.dir] + self.flags
        argv += ["--", "--log-level", "warn"]
        self.command = " ".join(["dcache"] + argv[1:])
        self.launcher = subprocess.Popen(pinned(SERVER_CPU, argv), stdout=subprocess.PIPE,
                                         stderr=open(os.path.join(self.dir, "launch.err"), "w"),
                                         text=True)
        # The launcher prints a table (node, address, pid, slots, log) once the cluster is one
        # and every slot is served, then "Ctrl-C stops them all."; it waits a minute at most.
        lines, deadline = [], time.time() + 90
        reader = threading.Thread(target=self._read, args=(lines,), daemon=True)
        reader.start()
        reader.join(max(0, deadline - time.time()))
        if not lines or "Ctrl-C" not in lines[-1]:
            with open(os.path.join(self.dir, "launch.err")) as f:
                err = f.read()
            raise RuntimeError(f"{self.name}: dcache launch did not start: {lines} {err}")
        for line in lines:
            parts = line.split()
            if len(parts) >= 4 and parts[0].isdigit() and ":" in parts[1]:
                self.ports.append(int(parts[1].rsplit(":", 1)[1]))
                self.pids.append(int(parts[2]))
        if len(self.ports) != 3:
            raise RuntimeError(f"{self.name}: cannot read the launcher's table: {lines}")
        self.wait_copies()

    def _read(self, lines):
        for line in self.launcher.stdout:
            lines.append(line.rstrip("\n"))
            if "Ctrl-C" in line:
                return

    def wait_copies(self, seconds=60):
        """Every range lists 1 + replicas copies on every node."""
        want = 2 if "--replicas" in self.flags else 1
        deadline = time.time() + seconds
        while time.time() < deadline:
            try:
                if all(all(len(r[2]) == want for r in cluster_slots(p)) for p in self.ports):
                    return
            except (OSError, ConnectionError):
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.name}: the slots never listed {want} copies")

    def primaries(self):
        return sorted({r[2][0] for r in cluster_slots(self.ports[0])})

    def pid_of(self, port):
        return self.pids[self.ports.index(port)]

    def stop(self):
        if self.launcher is None:
            return
        if self.launcher.poll() is None:
            self.launcher.send_signal(signal.SIGTERM)
            try:
                self.launcher.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.launcher.kill()
                self.launcher.wait()
        # The launcher stops its nodes; any it could not are stopped here, by pid.
        for pid in self.pids:
            if alive(pid, "dcache"):
                os.kill(pid, signal.SIGKILL)
        self.launcher = None


class Redis:
    system = "redis"

    def __init__(self, args, name, spec, workdir):
        self.args, self.name, self.dir = args, name, workdir
        self.replicas, self.timeout = spec
        self.ports = m.free_ports(3 * (1 + self.replicas))
        self.procs = []

    @property
    def pids(self):
        return [p.pid for p in self.procs]

    def start(self):
        for port in self.ports:
            argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                    "--cluster-enabled", "yes", "--cluster-node-timeout", str(self.timeout),
                    "--cluster-config-file", os.path.join(self.dir, f"nodes-{port}.conf"),
                    "--dir", self.dir, "--save", "", "--appendonly", "no",
                    "--maxmemory", "1gb",
                    "--logfile", os.path.join(self.dir, f"redis-{port}.log")]
            proc = subprocess.Popen(pinned(SERVER_CPU, argv), stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            self.procs.append(proc)
        for port, proc in zip(self.ports, self.procs):
            m.wait_port(port, proc)
        argv = ["redis-cli", "--cluster", "create"] + [f"127.0.0.1:{p}" for p in self.ports]
        if self.replicas:
            argv += ["--cluster-replicas", str(self.replicas)]
        self.command = " ".join(argv[:3]) + " ... " + " ".join(argv[3 + len(self.ports):])
        subprocess.run(argv + ["--cluster-yes"], check=True, stdout=subprocess.DEVNULL,
                       timeout=120)
        self.wait_ready()

    def wait_ready(self, seconds=60):
        """Every node says cluster_state:ok and knows all others; every replica's link is up."""
        deadline = time.time() + seconds
        while time.time() < deadline:
            ok = True
            try:
                for p in self.ports:
                    c = m.Conn(p, timeout=2)
                    ci = m.cluster_info(c)
                    repl = m.info_fields(c, "replication")
                    c.close()
                    if (ci["cluster_state"].strip() != "ok"
                            or int(ci["cluster_known_nodes"]) != len(self.ports)
                            or (repl["role"].strip() == "slave"
                                and repl["master_link_status"].strip() != "up")):
                        ok = False
                        break
                if ok and all(len(r[2]) == 1 + self.replicas for r in cluster_slots(self.ports[0])):
                    return
            except (OSError, ConnectionError, KeyError):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.name}: the cluster never became ready")

    def primaries(self):
        return sorted({r[2][0] for r in cluster_slots(self.ports[0])})

    def pid_of(self, port):
        return self.procs[self.ports.index(port)].pid

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.procs = []


def make(args, name, workdir):
    if name in DCACHE:
        return Dcache(args, name, DCACHE[name], workdir)
    if name in REDIS:
        return Redis(args, name, REDIS[name], workdir)
    spec = FAILOVER[name]
    if spec is None:
        return Dcache(args, name, DCACHE[name], workdir)
    return Redis(args, name, spec, workdir)


# ---------------------------------------------------------------------------------------------
# Load


def cpu_total(pids):
    total = 0.0
    for pid in pids:
        try:
            total += m.cpu_seconds(pid)
        except OSError:
            pass
    return total


def redis_benchmark(cl, pipeline, requests):
    argv = ["redis-benchmark", "-h", "127.0.0.1", "-p", str(cl.primaries()[0]), "--cluster",
            "-t", "set", "-c", str(CONNECTIONS), "-P", str(pipeline), "-r", str(KEYS),
            "-d", str(VALUE_SIZE), "-n", str(requests), "--csv"]
    cpu0, t0 = cpu_total(cl.pids), time.perf_counter()
    r = subprocess.run(pinned(CLIENT_CPU, argv), capture_output=True, text=True, timeout=600)
    cpu, wall = cpu_total(cl.pids) - cpu0, time.perf_counter() - t0
    row = None
    for line in r.stdout.splitlines():
        cells = [c.strip('"') for c in line.split(",")]
        if cells and cells[0] == "SET":
            row = cells
    errors = [line for line in r.stderr.splitlines() + r.stdout.splitlines()
              if "rror" in line]
    if r.returncode != 0 or row is None:
        raise RuntimeError(f"redis-benchmark failed ({r.returncode}): {r.stdout} {r.stderr}")
    # "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms",
    # "p99_latency_ms","max_latency_ms"
    return {"tool": "redis-benchmark", "command": " ".join(argv), "ops": float(row[1]),
            "p50": float(row[4]), "p99": float(row[6]), "max": float(row[7]),
            "writes": requests, "wall_s": wall, "server_cpu_s": cpu, "cpu_us": cpu / requests * 1e6,
            "error_lines": errors[:5]}


def generator(targets, pipeline, wait, seconds, out, conns):
    """Sends SET (and WAIT 1 0 after each when `wait`) in batches of `pipeline` on `conns`
    connections spread over `targets` ({port: [encoded SET, ...]}), for `seconds`; every
    connection waits for its whole batch before the next. Writes its tallies to `out`."""
    os.sched_setaffinity(0, {int(CLIENT_CPU)})
    waitcmd = m.encode("WAIT", 1, 0) if wait else b""
    per = 2 if wait else 1  # reply lines per write: +OK, then :N
    sel = selectors.DefaultSelector()
    ports = sorted(targets)
    rng = random.Random(11)
    states = []
    for i in range(conns):
        port = ports[i % len(ports)]
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.setblocking(False)
        cmds = targets[port]
        states.append({"sock": s, "cmds": cmds, "pos": rng.randrange(len(cmds)), "buf": b"",
                       "t": 0.0, "need": 0, "got": 0, "done": 0})
    lat, acked, errors, samples = [], 0, 0, []
    start = time.perf_counter()
    deadline = start + seconds

    def send(st):
        cmds, pos = st["cmds"], st["pos"]
        n = len(cmds)
        data = b"".join(cmds[(pos + j) % n] + waitcmd for j in range(pipeline))
        st["pos"] = (pos + pipeline) % n
        st["need"], st["got"], st["done"] = pipeline * per, 0, 0
        st["t"] = time.perf_counter()
        view = memoryview(data)
        while view:
            try:
                view = view[st["sock"].send(view):]
            except BlockingIOError:
                select.select([], [st["sock"]], [], 1)

    for st in states:
        send(st)
        sel.register(st["sock"], selectors.EVENT_READ, st)
    active, last = len(states), time.perf_counter()
    while active:
        events = sel.select(timeout=1)
        now = time.perf_counter()
        if not events:
            if now - last > 30:
                errors += active
                samples.append(f"{active} connections waited 30 s for a reply")
                break
            continue
        last = now
        for key, _ in events:
            st = key.data
            data = st["sock"].recv(1 << 16)
            if not data:
                raise ConnectionError("a server closed the connection")
            buf = st["buf"] + data
            end = buf.rfind(b"\r\n")
            if end < 0:
                st["buf"] = buf
                continue
            whole = buf[:end + 2]
            st["buf"] = buf[end + 2:]
            lines = whole.count(b"\r\n")
            bad = whole.count(b"\n-") + (whole[:1] == b"-")
            if bad:
                errors += bad
                if len(samples) < 5:
                    samples.append(whole[whole.find(b"-"):][:80].decode(errors="replace"))
            st["got"] += lines
            done = st["got"] // per
            new = done - st["done"]
            st["done"] = done
            lat.extend([now - st["t"]] * new)
            acked += new
            if st["got"] >= st["need"]:
                if now < deadline:
                    send(st)
                else:
                    sel.unregister(st["sock"])
                    st["sock"].close()
                    active -= 1
    elapsed = time.perf_counter() - start
    lat.sort()
    q = (lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1000) if lat else (lambda p: 0)
    with open(out, "w") as f:
        json.dump({"writes": acked - errors, "errors": errors, "seconds": elapsed,
                   "p50": q(0.5), "p99": q(0.99), "max": lat[-1] * 1000 if lat else 0,
                   "error_samples": samples}, f)


def python_load(cl, pipeline, wait, seconds, workdir):
    owner = owners(cluster_slots(cl.ports[0]))
    value = b"v" * VALUE_SIZE
    targets = {}
    for i in range(KEYS):
        k = b"key:%d" % i
        targets.setdefault(owner[m.keyslot(k)], []).append(m.encode(b"SET", k, value))
    for cmds in targets.values():
        random.Random(5).shuffle(cmds)
    out = os.path.join(workdir, "gen.json")
    cpu0 = cpu_total(cl.pids)
    p = multiprocessing.Process(target=generator,
                                args=(targets, pipeline, wait, seconds, out, CONNECTIONS))
    p.start()
    p.join(seconds + 120)
    if p.is_alive():
        p.terminate()
        p.join()
        raise RuntimeError("the generator did not finish")
    cpu = cpu_total(cl.pids) - cpu0
    with open(out) as f:
        r = json.load(f)
    os.remove(out)
    if p.exitcode != 0:
        raise RuntimeError(f"the generator failed ({p.exitcode})")
    writes = max(r["writes"], 1)
    r.update({"tool": "python", "ops": r["writes"] / r["seconds"], "server_cpu_s": cpu,
              "cpu_us": cpu / writes * 1e6})
    return r


def throughput(args, name, workdir, rnd):
    cl = make(args, name, workdir)
    runs = []
    try:
        cl.start()
        base = {"cluster": name, "system": cl.system, "round": rnd, "start": cl.command}
        for pipeline in (1, 16):
            n = args.requests_p1 if pipeline == 1 else args.requests_p16
            r = redis_benchmark(cl, pipeline, n)
            runs.append({**base, **r, "pipeline": pipeline, "wait": False})
            print(f"  {name} redis-benchmark P{pipeline}: {r['ops']:,.0f} ops/s p50 {r['p50']:.3f}"
                  f" p99 {r['p99']:.3f} ms, {r['cpu_us']:.2f} µs CPU/write ({r['wall_s']:.1f} s)"
                  f" {r['error_lines']}", flush=True)
        waits = (False, True) if name == "redis 3+3" else (False,)
        for wait in waits:
            for pipeline in (1, 16):
                r = python_load(cl, pipeline, wait, args.seconds, workdir)
                runs.append({**base, **r, "pipeline": pipeline, "wait": wait})
                print(f"  {name} python P{pipeline}{' WAIT 1 0' if wait else ''}: "
                      f"{r['ops']:,.0f} ops/s p50 {r['p50']:.3f} p99 {r['p99']:.3f} ms, "
                      f"{r['cpu_us']:.2f} µs CPU/write, errors {r['errors']} "
                      f"{r['error_samples'][:2]}", flush=True)
    finally:
        cl.stop()
    return runs


# ---------------------------------------------------------------------------------------------
# Failover


class Writer:
    """A cluster client for one SET at a time: follows -MOVED, re-reads CLUSTER SLOTS from any
    live node after a connection error or another error."""

    def __init__(self, seeds):
        self.seeds, self.conns, self.owner = list(seeds), {}, None
        self.refresh()

    def conn(self, port):
        if port not in self.conns:
            self.conns[port] = m.Conn(port, timeout=2)
        return self.conns[port]

    def drop(self, port):
        c = self.conns.pop(port, None)
        if c:
            c.close()

    def refresh(self):
        for port in self.seeds:
            try:
                self.owner = owners(cluster_slots(port, timeout=1))
                return True
            except (OSError, ConnectionError, IndexError, TypeError):
                continue
        return False

    def call(self, key, *cmd, via=None):
        """The reply, or an Error when the write's fate is unknown. `via`: ask this node first
        (after an error: any node answers -MOVED to the slot's owner as it knows it)."""
        slot = m.keyslot(key)
        for _ in range(5):
            port = via or self.owner[slot]
            via = None
            if port is None:
                return m.Error("no owner")
            try:
                r = self.conn(port).call(*cmd)
            except (OSError, ConnectionError) as e:
                self.drop(port)
                return m.Error(f"connection: {type(e).__name__}")
            if isinstance(r, m.Error) and str(r).startswith("MOVED"):
                self.owner[slot] = int(str(r).split()[2].rsplit(":", 1)[1])
                continue
            return r
        return m.Error("MOVED loop")

    def close(self):
        for p in list(self.conns):
            self.drop(p)


def failover(args, name, workdir, run):
    cl = make(args, name, workdir)
    try:
        cl.start()
        ranges = cluster_slots(cl.ports[0])
        # Run N kills the Nth primary in start order (dcache: node N), so each role (the first
        # node, the ones that joined it) is the victim once in three runs.
        primaries = sorted({r[2][0] for r in ranges}, key=cl.ports.index)
        victim = primaries[run % len(primaries)]
        victim_pid = cl.pid_of(victim)
        slots = {s for a, b, c in ranges if c[0] == victim for s in range(a, b + 1)}
        w = Writer([p for p in cl.ports if p != victim] + [victim])
        acked, errors, samples, timeline = [], {}, [], []
        killed = {}

        def kill():
            t = time.perf_counter()
            os.kill(victim_pid, signal.SIGKILL)
            # The clock runs from the signal; only writes sent after it count as back.
            killed["sent_after"] = time.perf_counter()
            killed["t"] = t

        timer = threading.Timer(args.before, kill)
        t0 = time.perf_counter()
        timer.start()
        i, first, recovered_at = 0, None, None
        try:
            while True:
                now = time.perf_counter()
                if recovered_at is not None and now - recovered_at > args.after:
                    break
                if "t" in killed and now - killed["t"] > args.max_failover:
                    break
                while True:
                    key = b"fo:%d" % i
                    i += 1
                    if m.keyslot(key) in slots:
                        break
                via, tries = None, 0
                while True:
                    sent = time.perf_counter()
                    r = w.call(key, b"SET", key, key, via=via)
                    now = time.perf_counter()
                    if r == b"OK":
                        acked.append(key)
                        if "t" in killed and first is None and sent >= killed["sent_after"]:
                            first = now - killed["t"]
                            recovered_at = now
                        break
                    kind = str(r).split()[0] if isinstance(r, m.Error) else repr(r)[:20]
                    errors[kind] = errors.get(kind, 0) + 1
                    if len(samples) < 8 and str(r) not in samples:
                        samples.append(str(r))
                    if "t" in killed:
                        timeline.append((round(now - killed["t"], 4), kind))
                    # Wait, then ask the next node in turn, following its -MOVED: re-reading
                    # CLUSTER SLOTS each time would make the probe as coarse as that reply is
                    # slow (13,666 ranges from a dcache node, 0.16 s to fetch and parse).
                    time.sleep(0.01)
                    tries += 1
                    via = w.seeds[tries % len(w.seeds)]
                    if ("t" in killed and now - killed["t"] > args.max_failover) or (
                            "t" not in killed and now - t0 > args.before + 30):
                        break
        finally:
            timer.cancel()
            timer.join()
        # Read every acknowledged key back through the slot map after the failover.
        lost, read_errors = 0, 0
        w.refresh()
        for key in acked:
            r = w.call(key, b"GET", key)
            if isinstance(r, m.Error):
                read_errors += 1
            if r != key:
                lost += 1
        w.close()
        result = {"cluster": name, "system": cl.system, "run": run, "start": cl.command,
                  "victim_port": victim, "victim_index": cl.ports.index(victim),
                  "failover_s": first, "acked": len(acked), "lost": lost,
                  "read_errors": read_errors, "write_errors": errors,
                  "error_samples": samples, "errors_after_kill": timeline[:20] + timeline[-20:]}
        print(f"  {name} run {run}: killed node {cl.ports.index(victim) + 1}; writes back after "
              f"{first if first is None else round(first, 3)} s; {len(acked)} acknowledged, "
              f"{lost} lost ({read_errors} read errors); errors {errors} {samples[:3]}",
              flush=True)
        return result
    finally:
        cl.stop()


# ---------------------------------------------------------------------------------------------
# Report


def machine():
    model = "unknown CPU"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    out = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout
    version = next((w.split("=")[-1] for w in out.split() if "v=" in w), "?")
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    return {"cpu": model, "cores": os.cpu_count(), "kernel": platform.release(),
            "redis-server": version, "commit": commit,
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def markdown(result):
    info, args = result["machine"], result["args"]
    runs = result["throughput"]
    lines = [
        f"Machine: {info['cpu']}, {info['cores']} cores, Linux {info['kernel']}; redis-server "
        f"{info['redis-server']}; dcache release build of `{info['commit']}`; {info['date']}. "
        f"Servers pinned to core 0, load generators to core 1. {args['rounds']} interleaved "
        f"rounds, medians; {CONNECTIONS} connections, SET of 64-byte values on "
        f"{KEYS:,} keys.",
    ]

    def cell(rs, field, fmt):
        v = med(r[field] for r in rs)
        return "-" if v is None else format(v, fmt)

    def group(tool, wait=False):
        out = {}
        for r in runs:
            if r["tool"] == tool and r["wait"] == wait:
                out.setdefault((r["cluster"], r["pipeline"]), []).append(r)
        return out

    order = list(DCACHE) + list(REDIS)
    for tool, title in (("redis-benchmark", "`redis-benchmark --cluster -t set` (both systems)"),
                        ("python", "this script's generator (Python, one process)")):
        g = group(tool)
        if not g:
            continue
        lines += ["", f"SET through {title}:", "",
                  "| cluster | P1 ops/s | P1 p50 / p99 ms | P1 CPU µs/write | ÷ no replica "
                  "| P16 ops/s | P16 p50 / p99 ms | P16 CPU µs/write | ÷ no replica |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        rows = [(n, False) for n in order]
        if tool == "python":
            rows.insert(rows.index(("redis 3+3", False)) + 1, ("redis 3+3", True))
        for name, wait in rows:
            gw = group(tool, wait)
            if (name, 1) not in gw:
                continue
            row = [name + (", `WAIT 1 0` after each SET" if wait else "")]
            system = "dcache" if name.startswith("dcache") else "redis"
            for p in (1, 16):
                rs = gw.get((name, p), [])
                base = g.get((BASELINE[system], p), [])
                row += [cell(rs, "ops", ",.0f"),
                        f"{cell(rs, 'p50', '.3f')} / {cell(rs, 'p99', '.3f')}",
                        cell(rs, "cpu_us", ".2f")]
                b, c = med(r["cpu_us"] for r in base), med(r["cpu_us"] for r in rs)
                row.append(f"{c / b:.2f}" if b and c and name != BASELINE[system] else "-")
            lines.append("| " + " | ".join(row) + " |")
    errs = {}
    for r in runs:
        if r.get("errors") or r.get("error_lines"):
            errs.setdefault((r["cluster"], r["tool"], r["pipeline"], r["wait"]), []).append(
                r.get("errors") or len(r["error_lines"]))
    if errs:
        lines += ["", "Runs with errors (count per run): " + "; ".join(
            f"{c} {t} P{p}{' WAIT' if w else ''}: {v}" for (c, t, p, w), v in errs.items())]
    fo = result["failover"]
    if fo:
        lines += ["", f"Failover: `kill -9` of a primary, {args['failover_runs']} runs each "
                  f"(the victim, node N, rotating over the primaries), this script's writer:", "",
                  "| cluster | writes back after s: median (runs) | acknowledged writes "
                  "| acknowledged writes lost (runs) |",
                  "|---|---:|---:|---:|"]
        for name in FAILOVER:
            rs = [r for r in fo if r["cluster"] == name]
            if not rs:
                continue
            times = [r["failover_s"] for r in rs]
            shown = ", ".join(("never" if r["failover_s"] is None else f"{r['failover_s']:.2f}")
                              + f" node {r['victim_index'] + 1}" for r in rs)
            m_t = med(times)
            lines.append(
                f"| {name} | {'-' if m_t is None else f'{m_t:.2f}'} ({shown}) | "
                f"{med(r['acked'] for r in rs):,.0f} | "
                f"{', '.join(str(r['lost']) for r in rs)} |")
    if result.get("failed"):
        lines += ["", "Failed: " + "; ".join(result["failed"])]
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dcache", default=os.path.join(ROOT, "target", "release", "dcache"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--requests-p1", type=int, default=150_000)
    ap.add_argument("--requests-p16", type=int, default=600_000)
    ap.add_argument("--seconds", type=float, default=2.0, help="each run of the Python generator")
    ap.add_argument("--failover-runs", type=int, default=3)
    ap.add_argument("--before", type=float, default=2.0, help="seconds of writes before the kill")
    ap.add_argument("--after", type=float, default=1.0, help="seconds of writes after recovery")
    ap.add_argument("--max-failover", type=float, default=60.0)
    ap.add_argument("--parts", default="throughput,failover")
    ap.add_argument("--only", help="cluster names (as in the tables), separated by ;")
    ap.add_argument("--no-write", action="store_true", help="print only; leave docs/ alone")
    ap.add_argument("--keep", action="store_true", help="keep the nodes' directories and logs")
    ap.add_argument("--report-only", action="store_true",
                    help="rewrite the tables from docs/perf/replication.json, measure nothing")
    args = ap.parse_args()
    for exe in ("redis-server", "redis-cli", "redis-benchmark", "taskset"):
        if not shutil.which(exe):
            sys.exit(f"needs {exe} (Debian: apt-get install redis-server redis-tools util-linux)")
    if not os.access(args.dcache, os.X_OK):
        sys.exit(f"no dcache binary at {args.dcache} (cargo build --release)")
    only = set(args.only.split(";")) if args.only else None
    # The script itself (generators, failover writer, tools) runs on the client core; the
    # servers are started under `taskset -c 0`.
    os.sched_setaffinity(0, {int(CLIENT_CPU)})
    parts = args.parts.split(",")
    if args.report_only:
        with open(OUT_JSON) as f:
            result = json.load(f)
        table = markdown(result)
        print(table)
        if not args.no_write:
            replace_between(PERF_DOC, BEGIN, END, table)
        return
    result = {"machine": machine(), "args": vars(args), "throughput": [], "failover": [],
              "failed": []}

    def save():
        if not args.no_write:
            os.makedirs(os.path.dirname(OUT_JSON), exist_ok=True)
            with open(OUT_JSON, "w") as f:
                json.dump(result, f, indent=1)

    def attempt(what, fn, *a):
        """One cluster's measurement; a failure is recorded and the run goes on."""
        try:
            return fn(*a)
        except Exception as e:  # noqa: BLE001 (recorded in the results, not hidden)
            print(f"  FAILED {what}: {type(e).__name__}: {e}", flush=True)
            result["failed"].append(f"{what}: {type(e).__name__}: {e}")
            return None
        finally:
            save()

    workdir = tempfile.mkdtemp(prefix="replication-")
    try:
        if "throughput" in parts:
            names = [n for n in list(DCACHE) + list(REDIS) if not only or n in only]
            for rnd in range(args.rounds):
                # Each round in another order, so that no cluster always follows the same one.
                order = names[rnd % len(names):] + names[:rnd % len(names)]
                print(f"round {rnd + 1}: {order}", flush=True)
                for name in order:
                    d = tempfile.mkdtemp(dir=workdir)
                    runs = attempt(f"{name} round {rnd + 1}", throughput, args, name, d, rnd)
                    result["throughput"] += runs or []
        if "failover" in parts:
            for run in range(args.failover_runs):
                for name in FAILOVER:
                    if only and name not in only:
                        continue
                    d = tempfile.mkdtemp(dir=workdir)
                    r = attempt(f"{name} failover run {run + 1}", failover, args, name, d, run)
                    if r:
                        result["failover"].append(r)
                        save()
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"logs kept in {workdir}")
    table = markdown(result)
    print()
    print(table)
    save()
    if not args.no_write:
        replace_between(PERF_DOC, BEGIN, END, table)
        print("\nwrote docs/PERFORMANCE.md and docs/perf/replication.json")


if __name__ == "__main__":
    main()

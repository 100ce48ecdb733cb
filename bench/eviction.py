#!/usr/bin/env python3
"""The hit-ratio lab's figures: every eviction policy and Belady's optimum, on the ARC traces and
on generated workloads, through `dcache sim` (the store's own policies).

Writes a table per run between the markers in docs/EVICTION.md, the raw figures to
docs/eviction/results.json and a chart per run (hit ratio against cache size) to
docs/eviction/NAME.png. The ARC traces are read from ../shared/traces (or $DCACHE_TRACES); runs
that need them are skipped, with a message, when they are absent. Installs matplotlib with pip
when it is missing.

Usage: python3 bench/eviction.py [--only NAME,...]
"""

import argparse
import json
import os
import subprocess
import sys

from markers import replace_between

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = os.path.join(ROOT, "docs", "EVICTION.md")
OUT_DIR = os.path.join(ROOT, "docs", "eviction")
BEGIN, END = "<!-- eviction.py:begin -->", "<!-- eviction.py:end -->"
POLICIES = "lru,lfu,random,sieve,s3fifo,w-tinylfu"
TRACES = os.environ.get("DCACHE_TRACES", os.path.join(ROOT, "..", "shared", "traces"))

# name, what it is, the source arguments, cache sizes
RUNS = [
    ("oltp", "ARC trace OLTP (a CODASYL database, 914,145 requests)",
     ["--trace", "{traces}/arc/OLTP.lis.zst"], [1000, 2000, 5000, 10000, 20000]),
    ("p3", "ARC trace P3 (a Windows NT workstation, 3,912,296 requests)",
     ["--trace", "{traces}/arc/P3.lis.zst"], [1000, 10000, 50000, 100000, 200000]),
    ("zipf-0.6", "Zipf(0.6), 1,000,000 keys, 20,000,000 requests",
     ["--workload", "zipf:0.6:1000000:20000000"], [10000, 100000]),
    ("zipf-0.8", "Zipf(0.8), 1,000,000 keys, 20,000,000 requests",
     ["--workload", "zipf:0.8:1000000:20000000"], [10000, 100000]),
    ("zipf-1.0", "Zipf(1.0), 1,000,000 keys, 20,000,000 requests",
     ["--workload", "zipf:1.0:1000000:20000000"], [1000, 10000, 100000]),
    ("zipf-1.0-short", "Zipf(1.0), 1,000,000 keys, 5,000,000 requests (cold misses weigh more)",
     ["--workload", "zipf:1.0:1000000:5000000"], [10000, 100000]),
    ("zipf-1.2", "Zipf(1.2), 1,000,000 keys, 20,000,000 requests",
     ["--workload", "zipf:1.2:1000000:20000000"], [10000, 100000]),
    ("loop", "a loop over 2,000 keys, 200,000 requests",
     ["--workload", "loop:2000:200000"], [500, 1000, 1500, 1900]),
    ("scan", "Zipf(0.99) over 100,000 keys with a one-pass scan of fresh keys in every fifth "
     "request, 1,000,000 requests", ["--workload", "scan:0.99:100000:1000000"],
     [1000, 10000, 50000]),
    ("shift", "Zipf(1.0) over 100,000 keys whose popular keys change halfway, 1,000,000 requests",
     ["--workload", "shift:1.0:100000:1000000"], [1000, 10000, 50000]),
]


def ensure_matplotlib():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "matplotlib"], check=True)


def command(source, sizes):
    return (["cargo", "run", "--release", "-q", "--", "sim"] + source
            + ["--sizes", ",".join(map(str, sizes)), "--policies", POLICIES])


def printable(argv):
    return " ".join(a.replace(TRACES, "../shared/traces") for a in argv)


def table(run, result):
    rows = result["hit_ratio_percent"]
    names = [k for k in rows[0] if k != "size"]
    lines = [f"### {run['name']}: {run['what']}", "", "```", printable(run["argv"]), "```", "",
             f"![hit ratio against cache size, {run['name']}](eviction/{run['name']}.png)", "",
             "| cache size | " + " | ".join(names) + " |", "|---:|" + "---:|" * len(names)]
    for row in rows:
        best = max(row[n] for n in names if n != "belady")
        cells = [(f"**{row[n]:.2f}**" if row[n] == best and n != "belady" else f"{row[n]:.2f}")
                 for n in names]
        lines.append(f"| {row['size']:,} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def chart(run, result, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["hit_ratio_percent"]
    sizes = [r["size"] for r in rows]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name in [k for k in rows[0] if k != "size"]:
        style = {"linestyle": "--", "color": "black"} if name == "belady" else {"marker": "o"}
        ax.plot(sizes, [r[name] for r in rows], label=name, **style)
    ax.set_xscale("log")
    ax.set_xlabel("cache size (entries)")
    ax.set_ylabel("hit ratio (%)")
    ax.set_title(f"{run['name']}: {run['what']}", fontsize=8)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", help="comma-separated run names")
    args = ap.parse_args()
    ensure_matplotlib()
    os.makedirs(OUT_DIR, exist_ok=True)
    results_path = os.path.join(OUT_DIR, "results.json")
    results = json.load(open(results_path)) if os.path.exists(results_path) else {}
    only = set(args.only.split(",")) if args.only else None
    for name, what, source, sizes in RUNS:
        if only and name not in only:
            continue
        source = [a.format(traces=TRACES) for a in source]
        if "--trace" in source and not os.path.exists(source[1]):
            print(f"skipped {name}: {source[1]} is not there (set DCACHE_TRACES)")
            continue
        argv = command(source, sizes)
        print(printable(argv), flush=True)
        out = subprocess.run(argv + ["--json"], cwd=ROOT, capture_output=True, text=True,
                             check=True)
        result = json.loads(out.stdout)
        run = {"name": name, "what": what, "argv": argv}
        results[name] = {"run": {**run, "argv": printable(argv)}, "result": result}
        chart(run, result, os.path.join(OUT_DIR, f"{name}.png"))
    with open(results_path, "w") as f:
        json.dump(results, f, indent=1)
    sections = []
    for name, _, _, _ in RUNS:
        if name in results:
            r = results[name]
            run = {**r["run"], "argv": r["run"]["argv"].split(" ")}
            sections.append(table(run, r["result"]))
    replace_between(DOC, BEGIN, END, "\n\n".join(sections))
    print("wrote docs/EVICTION.md and docs/eviction/")


if __name__ == "__main__":
    main()

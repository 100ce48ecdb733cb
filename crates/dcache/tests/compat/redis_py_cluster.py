"""redis-py's RedisCluster and redis-cli -c against a running dcache cluster: each reads back
what the other wrote.

Usage: python3 redis_py_cluster.py PORT NODES, where PORT is any member's client port and NODES
the number of members expected. Exits non-zero on the first mismatch.
"""

import subprocess
import sys

from redis.cluster import RedisCluster
from redis.exceptions import WatchError

port = int(sys.argv[1])
nodes = int(sys.argv[2])
KEYS = 300


def redis_cli(lines):
    """Runs redis-cli in cluster mode with one command per line on its input; its replies."""
    out = subprocess.run(
        ["redis-cli", "-c", "-h", "127.0.0.1", "-p", str(port)],
        input="".join(line + "\n" for line in lines),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    # In cluster mode redis-cli also says where it was sent ("-> Redirected to slot …").
    return [line for line in out.splitlines() if not line.startswith("-> Redirected")]


rc = RedisCluster(host="127.0.0.1", port=port, decode_responses=True)
primaries = rc.get_primaries()
assert len(primaries) == nodes, primaries
assert rc.ping()

# redis-py writes, redis-cli -c reads.
for i in range(KEYS):
    assert rc.set(f"py:{i}", f"from-py-{i}")
got = redis_cli([f"GET py:{i}" for i in range(KEYS)])
assert got == [f"from-py-{i}" for i in range(KEYS)], got

# redis-cli -c writes, redis-py reads.
got = redis_cli([f"SET cli:{i} from-cli-{i}" for i in range(KEYS)])
assert got == ["OK"] * KEYS, got
for i in range(KEYS):
    assert rc.get(f"cli:{i}") == f"from-cli-{i}", i

# Keys of many slots in one call: redis-py splits it by slot, one MGET per node.
keys = [f"py:{i}" for i in range(KEYS)] + ["missing"] + [f"cli:{i}" for i in range(KEYS)]
want = [f"from-py-{i}" for i in range(KEYS)] + [None] + [f"from-cli-{i}" for i in range(KEYS)]
assert rc.mget_nonatomic(keys) == want

# Every key sits on the node that serves its slot: the nodes' key counts add up, no copies.
sizes = rc.dbsize(target_nodes=RedisCluster.PRIMARIES)
total = sum(sizes.values()) if isinstance(sizes, dict) else sizes
assert total == 2 * KEYS, sizes
# A transactional cluster pipeline: MULTI ... EXEC on the node of the keys' one slot, and WATCH.
with rc.pipeline(transaction=True) as p:
    p.set("{tx}a", "1")
    p.incr("{tx}a")
    p.get("{tx}a")
    # (redis-py 8.1's cluster transactions hand SET's reply back raw: "OK", not True.)
    res = p.execute()
    assert res[0] in (True, "OK") and res[1:] == [2, "2"], res
with rc.pipeline(transaction=True) as p:
    p.watch("{tx}a")
    assert p.get("{tx}a") == "2"
    rc.set("{tx}a", "changed")
    p.multi()
    p.set("{tx}a", "mine")
    try:
        p.execute()
        raise AssertionError("EXEC after a watched key changed must fail")
    except WatchError:
        pass
assert rc.get("{tx}a") == "changed"
rc.delete("{tx}a")
print(f"redis-py {__import__('redis').__version__} RedisCluster with redis-cli -c over {nodes} nodes: ok")

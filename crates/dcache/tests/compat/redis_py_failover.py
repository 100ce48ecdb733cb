"""redis-py's RedisCluster through a kill -9 of one node of a replicated dcache cluster.

Usage: python3 redis_py_failover.py PORT, where PORT is the client port of a node that stays up.
Writes keys, prints "WROTE n", waits for a line on its input (the test kills a node meanwhile),
then writes more keys and reads every acknowledged key back, each operation retried on errors
(at most RETRIES times, 50 ms apart, and never past DEADLINE seconds in all). Prints "DONE" and
exits 0 if every acknowledged key reads back with its value; exits non-zero otherwise.
"""

import sys
import time

import redis
from redis.cluster import RedisCluster

port = int(sys.argv[1])
KEYS = 300
RETRIES = 200
DEADLINE = time.monotonic() + 60

rc = RedisCluster(host="127.0.0.1", port=port, decode_responses=True)
acked = {}
failures = []


def retried(what, op):
    """op() until it does not raise a redis error; the last error is raised past the bounds."""
    for attempt in range(RETRIES):
        try:
            return op()
        except redis.exceptions.RedisError as e:
            failures.append(f"{what}: {type(e).__name__}: {e}")
            if attempt == RETRIES - 1 or time.monotonic() > DEADLINE:
                raise
            time.sleep(0.05)
    raise AssertionError("unreachable")


def write(first, count):
    for i in range(first, first + count):
        key, value = f"py-fail:{i}", f"v-{i}"
        assert retried(f"SET {key}", lambda: rc.set(key, value)) is True
        acked[key] = value


write(0, KEYS)
print(f"WROTE {len(acked)}", flush=True)
sys.stdin.readline()

killed = time.monotonic()
write(KEYS, KEYS)
written = time.monotonic() - killed
for key, value in acked.items():
    got = retried(f"GET {key}", lambda: rc.get(key))
    assert got == value, f"{key}: wrote {value!r}, read {got!r}"
print(
    f"redis-py {redis.__version__}: {len(acked)} keys acknowledged and read back; "
    f"{KEYS} writes after the kill took {written * 1000:.0f} ms with {len(failures)} failed "
    f"attempts{''.join(chr(10) + '  ' + f for f in failures[:3])}",
    flush=True,
)
print("DONE", flush=True)

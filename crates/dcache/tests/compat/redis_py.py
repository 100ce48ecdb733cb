"""redis-py against a running dcache node, in RESP2 and RESP3.

Usage: python3 redis_py.py PORT. Exits non-zero on the first mismatch.
"""

import sys

import redis

port = int(sys.argv[1])
for proto in (2, 3):
    r = redis.Redis(port=port, protocol=proto, decode_responses=True)
    assert r.ping()
    r.flushall()
    assert r.set("a", "1", ex=100)
    assert r.get("a") == "1"
    # The node runs on the wall clock: a TTL read back can only be bounded, never pinned
    # (a slow machine may take seconds between the two calls); an absolute expiry reads back
    # exactly.
    assert 0 < r.ttl("a") <= 100
    assert r.pexpireat("a", 4_102_444_800_000)  # 2100-01-01
    assert r.pexpiretime("a") == 4_102_444_800_000
    assert r.incr("a") == 2
    assert r.set("a", "x", nx=True) is None
    r.hset("sess", mapping={"user": "ann", "cart": "3"})
    assert r.hgetall("sess") == {"user": "ann", "cart": "3"}
    assert r.hincrby("sess", "cart", 2) == 5
    assert r.hincrbyfloat("sess", "score", 0.5) == 0.5
    p = r.pipeline(transaction=False)
    for i in range(100):
        p.set(f"k{i}", i)
    p.execute()
    assert r.mget(["k1", "k2", "nope"]) == ["1", "2", None]
    assert sorted(r.scan_iter(match="k9*", count=7)) == ["k9"] + [f"k9{i}" for i in range(10)]
    assert r.exists("k1", "k2", "nope") == 2
    assert r.delete("k1", "k2") == 2
    info = r.info()
    assert info["redis_version"] and info["connected_clients"] >= 1
    assert r.config_get("maxmemory")["maxmemory"] == str(64 << 20)
    assert r.client_id() > 0
    assert r.incrbyfloat("f", 1.5) == 1.5
    assert r.getex("a", persist=True) == "2" and r.ttl("a") == -1
    try:
        r.hset("a", "f", "v")
        raise AssertionError("HSET on a string must fail")
    except redis.ResponseError as e:
        assert str(e).startswith("WRONGTYPE"), e
    # The default pipeline is a transaction (MULTI ... EXEC).
    with r.pipeline() as p:
        p.set("t:a", "1").incr("t:a").get("t:a")
        assert p.execute() == [True, 2, "2"]
    # An error when running is one element of the reply; the others are applied.
    with r.pipeline() as p:
        p.set("t:s", "x").lpush("t:s", "y").set("t:b", "2")
        res = p.execute(raise_on_error=False)
        assert res[0] is True and res[2] is True, res
        assert isinstance(res[1], redis.ResponseError), res
    assert r.get("t:b") == "2"
    # An error when queueing discards the whole transaction.
    with r.pipeline() as p:
        p.set("t:c", "1").execute_command("NOPE")
        try:
            p.execute()
            raise AssertionError("a transaction with an unknown command must fail")
        except redis.ResponseError as e:
            assert "unknown command" in str(e), e
    assert r.get("t:c") is None
    # WATCH through the transaction() helper, with a concurrent writer on another connection:
    # the first EXEC is aborted (WatchError inside redis-py), the helper runs it again.
    other = redis.Redis(port=port, protocol=proto, decode_responses=True)
    r.set("t:n", "0")
    seen = []

    def bump(pipe):
        n = int(pipe.get("t:n"))
        if not seen:
            other.set("t:n", "100")
        seen.append(n)
        pipe.multi()
        pipe.set("t:n", n + 1)

    r.transaction(bump, "t:n")
    assert seen == [0, 100] and r.get("t:n") == "101", seen
    with r.pipeline() as p:
        p.watch("t:n")
        other.incr("t:n")
        p.multi()
        p.set("t:n", "mine")
        try:
            p.execute()
            raise AssertionError("EXEC after a watched key changed must fail")
        except redis.WatchError:
            pass
    assert r.get("t:n") == "102"
    other.close()
    # Pub/sub: a subscriber's confirmations and messages through get_message, the counts.
    ps = r.pubsub()
    ps.subscribe("news")
    msg = ps.get_message(timeout=5)
    assert msg == {"type": "subscribe", "pattern": None, "channel": "news", "data": 1}, msg
    ps.psubscribe("n*")
    msg = ps.get_message(timeout=5)
    assert msg == {"type": "psubscribe", "pattern": None, "channel": "n*", "data": 2}, msg
    assert r.publish("news", "hello") == 2
    got = [ps.get_message(timeout=5) for _ in range(2)]
    assert got == [
        {"type": "message", "pattern": None, "channel": "news", "data": "hello"},
        {"type": "pmessage", "pattern": "n*", "channel": "news", "data": "hello"},
    ], got
    assert r.pubsub_numsub("news", "none") == [("news", 1), ("none", 0)]
    assert r.pubsub_numpat() == 1
    assert r.pubsub_channels() == ["news"]
    ps.unsubscribe("news")
    msg = ps.get_message(timeout=5)
    assert msg == {"type": "unsubscribe", "pattern": None, "channel": "news", "data": 1}, msg
    ps.close()
    r.flushall()
    assert r.dbsize() == 0
    print(f"redis-py {redis.__version__} RESP{proto}: ok")

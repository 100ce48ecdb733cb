"""redis-py's cluster client reads COMMAND at start-up to find each command's keys
(CommandsParser): check that it parses our reply in RESP2 and RESP3 and finds the keys,
including those of subcommands (MEMORY USAGE, OBJECT ENCODING). Usage: redis_py_command.py PORT"""

import sys

import redis

try:
    from redis._parsers.commands import CommandsParser
except ImportError:  # redis-py before 5
    from redis.commands.parser import CommandsParser

port = int(sys.argv[1])
for protocol in (2, 3):
    r = redis.Redis(host="127.0.0.1", port=port, protocol=protocol)
    commands = r.command()
    assert commands["get"]["first_key_pos"] == 1, commands["get"]
    assert commands["mset"]["step_count"] == 2, commands["mset"]
    parser = CommandsParser(r)
    for args, want in [
        (("GET", "k"), ["k"]),
        (("MSET", "a", "1", "b", "2"), ["a", "b"]),
        (("MGET", "a", "b", "c"), ["a", "b", "c"]),
        (("RENAME", "a", "b"), ["a", "b"]),
        (("MEMORY", "USAGE", "k"), ["k"]),
        (("OBJECT", "ENCODING", "k"), ["k"]),
    ]:
        got = [k.decode() if isinstance(k, bytes) else str(k) for k in parser.get_keys(r, *args)]
        assert got == want, (protocol, args, got)
    assert parser.get_keys(r, "PING") is None
    assert parser.get_keys(r, "DBSIZE") is None
    print(f"RESP{protocol}: {len(commands)} commands parsed, keys found")

#!/usr/bin/env bash
# EVALSHA of a small rate-limit script (INCR + EXPIRE on the first hit), dcache against
# redis-server, with INCR alone beside it for the cost of the script machinery. One pass: each
# server pinned to core 0, redis-benchmark to core 1, 50 connections, 200,000 requests, 10,000
# random keys, pipeline 1 and 16. Server CPU per request is utime + stime from /proc/PID/stat
# around each run, divided by the requests. Prints a Markdown table.
#
#   cargo build --release && bash bench/evalsha.sh
set -euo pipefail
DCACHE=${DCACHE:-target/release/dcache}
RP=${REDIS_PORT:-16401}
DP=${DCACHE_PORT:-16402}
dir=$(mktemp -d)
taskset -c 0 redis-server --port "$RP" --bind 127.0.0.1 --save '' --appendonly no > "$dir/redis.log" 2>&1 &
RPID=$!
taskset -c 0 "$DCACHE" node --port "$DP" --threads 1 --dir "$dir/dcache" > "$dir/dcache.log" 2>&1 &
DPID=$!
trap 'kill $RPID $DPID 2>/dev/null || true; rm -rf "$dir"' EXIT
for p in $RP $DP; do
  for _ in $(seq 50); do redis-cli -p "$p" ping > /dev/null 2>&1 && break; sleep 0.1; done
done
SCRIPT="local n = redis.call('incr', KEYS[1]) if n == 1 then redis.call('expire', KEYS[1], ARGV[2]) end if n > tonumber(ARGV[1]) then return 0 end return 1"
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)
N=200000
echo "| server | workload | requests/s | server CPU µs/request |"
echo "|---|---|---:|---:|"
for P in 1 16; do
  for server in redis dcache; do
    if [ "$server" = redis ]; then port=$RP; pid=$RPID; else port=$DP; pid=$DPID; fi
    sha=$(redis-cli -p "$port" script load "$SCRIPT")
    for work in evalsha incr; do
      if [ "$work" = evalsha ]; then args=(EVALSHA "$sha" 1 rl:__rand_int__ 100 60); else args=(INCR rl:__rand_int__); fi
      redis-cli -p "$port" flushall > /dev/null
      before=$(cpu "$pid")
      out=$(taskset -c 1 redis-benchmark -p "$port" -n "$N" -c 50 -P "$P" -r 10000 -q "${args[@]}")
      after=$(cpu "$pid")
      rps=$(echo "$out" | tr '\r' '\n' | grep -o '[0-9.]* requests per second' | tail -1 | awk '{print $1}')
      us=$(awk -v a="$after" -v b="$before" -v hz="$HZ" -v n="$N" 'BEGIN{printf "%.2f", (a-b)/hz*1e6/n}')
      echo "| $server | $work P$P | $rps | $us |"
    done
  done
done

#!/usr/bin/env python3
"""A placement experiment (not the product): primaries by rendezvous with a price per member,
raised only for members above 1.02x the mean until none is (an ascending auction), then the
primaries moved when one member joins or leaves. docs/HASHING.md quotes its figures.

Usage: python3 bench/placement_price.py [STEP] [--gumbel]   (member counts 2..64, every STEP-th)
Needs numpy (pip install numpy).
"""

import sys

import numpy as np

SLOTS = 16384
GUMBEL = "--gumbel" in sys.argv


def scores(member):
    """A member's score for every slot, fixed by the member alone."""
    u = np.random.default_rng(1000 + member).random(SLOTS)
    return -np.log(-np.log(u)) if GUMBEL else u


def primaries(ids, cap_factor=1.02, step=1e-5):
    """Each slot's primary: the member with the best score minus price."""
    sc = np.stack([scores(i) for i in ids], axis=1)
    cap = int(np.floor(SLOTS / len(ids) * cap_factor))
    price = np.zeros(len(ids))
    for _ in range(200_000):
        adjusted = sc - price
        owner = adjusted.argmax(axis=1)
        load = np.bincount(owner, minlength=len(ids))
        over = np.where(load > cap)[0]
        if len(over) == 0:
            return np.array(ids)[owner]
        top2 = np.partition(adjusted, -2, axis=1)
        margin = top2[:, -1] - top2[:, -2]
        for m in over:
            # Raise the price just enough to shed the excess: the k-th smallest margin.
            k = load[m] - cap
            price[m] += np.sort(margin[owner == m])[k - 1] + step
    raise RuntimeError("prices did not settle")


def main():
    every = int(next((a for a in sys.argv[1:] if a.isdigit()), "1"))
    worst_join = worst_leave = total = 0.0
    count = 0
    print("members  join (x ideal)  leave (extra %)  max/mean")
    for n in range(2, 65):
        if n % every:
            continue
        before, after = primaries(list(range(n))), primaries(list(range(n + 1)))
        join = (before != after).sum() * (n + 1) / SLOTS
        gone = (n + 1) // 2
        without = primaries([i for i in range(n + 1) if i != gone])
        own = (after == gone).sum()
        leave = ((after != without).sum() - own) / own
        balance = np.bincount(after, minlength=n + 1).max() / (SLOTS / (n + 1))
        print(f"{n + 1:>7}  {join:>14.3f}  {leave * 100:>15.1f}  {balance:>8.4f}", flush=True)
        worst_join, worst_leave = max(worst_join, join), max(worst_leave, leave)
        total, count = total + join, count + 1
    print(f"join: worst {worst_join:.3f}x, mean {total / count:.3f}x; "
          f"leave: worst +{worst_leave * 100:.1f} %")


if __name__ == "__main__":
    main()

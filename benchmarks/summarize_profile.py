"""Summarise a ``py-spy record --format raw --subprocesses`` profile: per process, the share
of samples and the functions with the most samples (self and inclusive).

    python benchmarks/summarize_profile.py prof.txt [--top 25]
"""

from __future__ import annotations

import argparse
import collections
import re


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("path")
    ap.add_argument("--top", type=int, default=25)
    args = ap.parse_args()
    per_proc: collections.Counter[str] = collections.Counter()
    self_t: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    incl: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for line in open(args.path, encoding="utf-8", errors="replace"):
        line = line.rstrip("\n")
        if not line:
            continue
        stack, _, count = line.rpartition(" ")
        n = int(count)
        frames = stack.split(";")
        procs = [f for f in frames if f.startswith("process ")]  # parent first, then children
        m = re.match(r"process (\d+):\"?([^\"]*)", procs[-1]) if procs else None
        proc = f"{m.group(1)} {m.group(2)[:60]}" if m else "?"
        per_proc[proc] += n
        # "func (file:line)" -> "func (file)": one entry per function, whatever the line
        funcs = [re.sub(r":\d+\)$", ")", f) for f in frames if not f.startswith("process ")]
        if funcs:
            self_t[proc][funcs[-1]] += n
        for f in set(funcs):
            incl[proc][f] += n
    total = sum(per_proc.values())
    for proc, n in per_proc.most_common():
        print(f"\n=== {proc}: {n} samples ({100 * n / total:.1f}%)")
        print("  -- self")
        for f, c in self_t[proc].most_common(args.top):
            print(f"  {100 * c / n:5.1f}%  {f[:150]}")
        print("  -- inclusive")
        for f, c in incl[proc].most_common(args.top):
            print(f"  {100 * c / n:5.1f}%  {f[:150]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

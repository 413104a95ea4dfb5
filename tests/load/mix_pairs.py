#!/usr/bin/env python3
"""The mixed load beside plain chats, pair by pair: reads the mix-*.jsonl of one or more
`MODES=mix bash tests/load/local.sh` result directories (or such files, as kept in
tests/load/measured) and prints, for each figure, the
median (range) of plain chats and of the mixed load, and the median (range) of the paired
difference (each rep's mixed run against the plain run beside it).

    python3 tests/load/mix_pairs.py tests/load/results/20261207-161500 [more dirs]
"""

import glob
import json
import statistics
import sys


def runs(directory):
    """The runs of a results directory (its mix-*.jsonl), or of one such file."""
    paths = [directory] if directory.endswith(".jsonl") else sorted(glob.glob(f"{directory}/mix-*.jsonl"))
    for path in paths:
        with open(path) as f:
            yield from (json.loads(line) for line in f if line.startswith("{"))


def pairs(directories):
    """(plain, mixed) per rep: local.sh writes each rep's two runs one after the other."""
    out = []
    for directory in directories:
        rows = list(runs(directory))
        for a, b in zip(rows[::2], rows[1::2]):
            plain, mixed = (a, b) if not a["mix"]["reactions"] else (b, a)
            if plain["mix"]["reactions"] or not mixed["mix"]["reactions"]:
                sys.exit(f"{directory}: runs out of pairs")
            out.append((plain, mixed))
    return out


def stage(name, q):
    return lambda r: (r.get("stages_ms") or {}).get(name, {}).get(q)


def kind(name):
    """A kind's delivery p99 (`delivery_ms_by_kind`): a plain run's every delivery is a chat,
    so the mixed load's replies and edits stand beside the plain run's chats."""

    def figure(r):
        by_kind = r.get("delivery_ms_by_kind")
        if not by_kind:
            return None
        if not r["mix"]["reactions"]:
            return r["delivery_ms"]["p99"]
        return by_kind.get(name, {}).get("p99")

    return figure


FIGURES = [
    ("delivery p50 (ms)", lambda r: r["delivery_ms"]["p50"]),
    ("delivery p99 (ms)", lambda r: r["delivery_ms"]["p99"]),
    ("  of chats (ms)", kind("chat")),
    ("  of replies (ms)", kind("reply")),
    ("  of edits (ms)", kind("edit")),
    ("delivery p99.9 (ms)", lambda r: r["delivery_ms"]["p99_9"]),
    ("ack p99 (ms)", lambda r: r["ack_ms"]["p99"]),
    ("flushed after p50 (ms)", lambda r: (r.get("flushed_after_ms") or {}).get("p50")),
    ("flushed after p99 (ms)", lambda r: (r.get("flushed_after_ms") or {}).get("p99")),
    ("CPU per event, all (µs)", lambda r: r["cpu_us_per_chat"].get("total")),
    ("  both nodes", lambda r: r["cpu_us_per_chat"].get("node1", 0) + r["cpu_us_per_chat"].get("node2", 0)),
    ("  Postgres", lambda r: next((v for k, v in r["cpu_us_per_chat"].items() if k.startswith("postgres")), None)),
    ("stage queued p99 (ms)", stage("queued", "p99")),
    ("stage commit p50 (ms)", stage("commit", "p50")),
    ("stage commit p99 (ms)", stage("commit", "p99")),
    ("stage bus p99 (ms)", stage("bus", "p99")),
    ("stage outbox p99 (ms)", stage("outbox", "p99")),
    ("stage socket p99 (ms)", stage("socket", "p99")),
]


def summary(values):
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def main():
    ps = pairs(sys.argv[1:])
    lost = sum(p["lost"] + m["lost"] + m["lost_reactions"] + p["duplicates"] + m["duplicates"] for p, m in ps)
    print(f"{len(ps)} pairs; lost or duplicated, all runs: {lost}")
    for name, figure in FIGURES:
        try:
            plain = [figure(p) for p, _ in ps]
            mixed = [figure(m) for _, m in ps]
        except (KeyError, TypeError):
            continue
        if None in plain or None in mixed:
            continue
        diffs = [100 * (m / p - 1) for p, m in zip(plain, mixed) if p]
        print(
            f"{name:26} plain {summary(plain):24} mixed {summary(mixed):24} "
            f"paired {statistics.median(diffs):+.1f}% ({min(diffs):+.1f} to {max(diffs):+.1f})"
        )


if __name__ == "__main__":
    main()

"""Call tracker throughput: the load_burst recording (50 calls, 5 715 events) through
the AMI parser + tracker, repeated, with linkedids made unique per round.

    .venv/bin/python bench/tracker.py [--rounds 40]

Prints events/s for the parser alone, the tracker alone (pre-parsed events) and both
together (the target for the AMI path is > 50 000 events/s). Asserts nothing.
"""
from __future__ import annotations

import argparse
import gc
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from cti.ami.parser import AmiMessage, AmiParser  # noqa: E402
from cti.tracker import CallTracker  # noqa: E402

sys.path.insert(0, os.path.join(ROOT, "tests"))
from traces import TRACES  # noqa: E402

RAW = str(TRACES / "load_burst" / "ami.raw")


def rounds_of_bytes(raw: bytes, rounds: int) -> list[bytes]:
    """The recording ``rounds`` times, ids prefixed per round so calls never collide."""
    body = raw[raw.index(b"\r\n") + 2:]
    out = []
    for n in range(rounds):
        out.append(body.replace(b": 17953888", f": {n:03d}53888".encode()))
    return out


def chunked(data: bytes, size: int = 4096) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=40)
    args = parser.parse_args()
    raw = open(RAW, "rb").read()
    banner = raw[:raw.index(b"\r\n") + 2]
    datas = [chunked(banner + b) for b in rounds_of_bytes(raw, args.rounds)]

    start = time.perf_counter()
    parsed = []
    for chunks in datas:
        ami = AmiParser()
        for chunk in chunks:
            parsed.extend(m for m in ami.feed(chunk) if isinstance(m, AmiMessage) and m.kind == "event")
    parse_s = time.perf_counter() - start
    n = len(parsed)

    gc.freeze()   # the 200k pre-parsed messages are not garbage: keep GC from rescanning them
    tracker = CallTracker()
    start = time.perf_counter()
    domain = 0
    for event in parsed:
        domain += len(tracker.handle(event))
    track_s = time.perf_counter() - start

    del parsed
    gc.unfreeze()
    gc.collect()
    tracker = CallTracker()
    start = time.perf_counter()
    for chunks in datas:
        ami = AmiParser()
        for chunk in chunks:
            for message in ami.feed(chunk):
                if isinstance(message, AmiMessage) and message.kind == "event":
                    tracker.handle(message)
    both_s = time.perf_counter() - start

    print(f"events: {n} ({args.rounds} rounds of load_burst), domain events: {domain}, "
          f"live calls left: {len(tracker.live_calls())}")
    print(f"parser only:      {n / parse_s:>10,.0f} events/s")
    print(f"tracker only:     {n / track_s:>10,.0f} events/s (pre-parsed; headers split on first use)")
    print(f"parser + tracker: {n / both_s:>10,.0f} events/s")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Exact per-poll latency quantiles from mdagg's quote records (bench/hedge_bench.sh).

mdagg's histogram exports power-of-two buckets, too coarse to test "p99.9 at most a quarter
of unhedged". Each quote record has its receive time (wall clock, ns), and each poller ticks at
a fixed, computable time: steady clock (CLOCK_MONOTONIC) epoch + phase_offset(source, symbol)
+ k * interval (src/poll/schedule.{hpp,cpp}: FNV-1a of "source/symbol" mod interval). So a
record's latency, tick to quote received, needs no change to the daemon. Polls without a
record (timed out, failed) rank as slower than any record: a quantile that lands on them
prints as ">timeout".

  poll_latency.py clock
      prints CLOCK_MONOTONIC and CLOCK_REALTIME now, ns (the bench's window ends).
  poll_latency.py stats OUT_DIR SOURCE INTERVAL_MS WINDOW_START WINDOW_END REAL_MINUS_MONO
                        UNANSWERED M0 M1 TIMEOUT_MS
      WINDOW_*: CLOCK_MONOTONIC ns; polls whose tick lies in the window count. UNANSWERED: polls
      of the window without a quote (timed out + failed, from mdagg's counters). M0, M1: the
      /metrics scrapes at the window's ends, to check the records against mdagg's histogram.
      Prints "p50 p99 p99.9 polls quotes past_next_tick breach duplicates woke_late": quantiles
      in ms; breach: how far, in % of polls, the records stray from mdagg's histogram beyond
      what tick lateness explains (main() says how); woke_late: % of ticks whose timer woke over
      2 ms late. POLL_LATENCY_DEBUG=1 prints both shares per bound to stderr.
"""
import bisect
import glob
import json
import math
import os
import re
import sys
import time
from datetime import datetime, timezone


def fnv1a_64(data: bytes, h: int = 0xCBF29CE484222325) -> int:
    for c in data:
        h = ((h ^ c) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def phase_ns(source: str, symbol: str, interval_ns: int) -> int:
    return fnv1a_64(f"{source}/{symbol}".encode()) % interval_ns


RFC3339 = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?Z$")


def wall_ns(text: str) -> int:
    m = RFC3339.match(text)
    secs = int(datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc).timestamp())
    return secs * 1_000_000_000 + int((m.group(2) or "0").ljust(9, "0"))


def read_records(out_dir: str, source: str):
    by_symbol = {}
    for path in sorted(glob.glob(f"{out_dir}/quotes-*.jsonl*")):
        with open(path) as f:
            for line in f:
                r = json.loads(line)
                if r.get("type") == "quote" and r.get("source") == source:
                    by_symbol.setdefault(r["symbol"], []).append(wall_ns(r["receive_time"]))
    return by_symbol


def poll_latencies(by_symbol, source, interval, offset, start, end):
    """(latencies in ns of the polls ticked in [start, end), late answers, duplicates)."""
    out, late, dup = [], 0, 0
    for symbol, received in by_symbol.items():
        phase = phase_ns(source, symbol, interval)
        prev_tick, prev_mono = None, None
        for mono in sorted(t - offset for t in received):
            tick = phase + (mono - phase) // interval * interval  # the last tick at or before
            # A late answer (docs/polling.md, "Late answers") arrives up to one more timeout
            # after its deadline, past the next tick, which its poll skipped: it is the answer
            # of the tick before if that tick polled, that is if the previous quote came before
            # it and no timeout came between. A timed-out poll (the deadline, then the grace)
            # ends past the second tick after its own: the next quote's tick is 3 or more
            # ticks after it, 4 or more after the quote before it; a late answer's is 2 or 3
            # (after a late answer itself) after the previous quote's. No poll fails fast or is
            # refused in this bench; the late answers found are checked against mdagg's count.
            if prev_mono is not None and prev_mono < tick - interval and tick - prev_tick <= 3 * interval:
                tick -= interval
                late += 1
            if tick == prev_tick:
                dup += 1
            prev_tick, prev_mono = tick, mono
            if start <= tick < end:
                out.append(mono - tick)
    return out, late, dup


def histogram(path, name="poll_duration_seconds"):
    buckets = {}
    with open(path) as f:
        for line in f:
            m = re.match(r'^\S*' + name + r'_bucket\{.*le="([^"]+)"\} (\S+)$', line)
            if m:
                le = math.inf if m.group(1) == "+Inf" else float(m.group(1))
                buckets[le] = buckets.get(le, 0) + float(m.group(2))
    return buckets


def main(argv):
    if argv[1] == "clock":
        print(time.clock_gettime_ns(time.CLOCK_MONOTONIC), time.clock_gettime_ns(time.CLOCK_REALTIME))
        return
    out_dir, source = argv[2], argv[3]
    interval = int(argv[4]) * 1_000_000
    start, end, offset, unanswered = int(argv[5]), int(argv[6]), int(argv[7]), int(argv[8])
    h0, h1, timeout_ms = histogram(argv[9]), histogram(argv[10]), float(argv[11])
    lat, late, dup = poll_latencies(read_records(out_dir, source), source, interval, offset, start, end)
    lat.sort()
    n = len(lat) + unanswered

    def quantile(q):  # nearest rank, as mdagg's own (LatencyHistogram::Snapshot::quantile)
        rank = max(1, math.ceil(q * n))
        return f"{lat[rank - 1] / 1e6:.2f}" if rank <= len(lat) else f">{timeout_ms:g}"

    # The check. mdagg's histogram counts completed polls from their timer's wake-up, the
    # records from their tick: a record's latency is the histogram's plus the tick's lateness
    # (up to 1 ms from the millisecond timer wheel; more when the daemon is starved of CPU).
    # With R and H the shares of completed polls at or below a bound b, and W the share of
    # ticks that woke over L = 2.048 ms late (mdagg's lateness histogram), right reconstruction
    # needs R(b) <= H(b) and R(b + L) >= H(b) - W. The largest breach, in % of polls, is
    # printed: window edges account for a few hundredths; more means misread ticks.
    late_bound = 0.002048
    l0, l1 = histogram(argv[9], "tick_lateness_seconds"), histogram(argv[10], "tick_lateness_seconds")
    ticks = l1.get(math.inf, 0) - l0.get(math.inf, 0)
    woke_late = 1 - (l1.get(late_bound, 0) - l0.get(late_bound, 0)) / ticks if ticks else 0
    hist_total = h1[math.inf] - h0[math.inf]
    breach = 0.0

    def share_rec(seconds):
        return bisect.bisect_right(lat, seconds * 1e9) / len(lat)

    for b in sorted(h1):
        if 0.001 <= b <= timeout_ms / 1000 and hist_total > 0 and lat:
            share_hist = (h1[b] - h0.get(b, 0)) / hist_total
            breach = max(breach, share_rec(b) - share_hist, share_hist - woke_late - share_rec(b + late_bound))
            if os.environ.get("POLL_LATENCY_DEBUG"):
                print(f"{b * 1000:g} ms: histogram {share_hist:.4%}, records {share_rec(b):.4%},"
                      f" records at +{late_bound * 1000:g} ms {share_rec(b + late_bound):.4%}", file=sys.stderr)
    print(quantile(0.5), quantile(0.99), quantile(0.999), n, len(lat), late, f"{100 * breach:.2f}",
          dup, f"{100 * woke_late:.2f}")

if __name__ == "__main__":
    main(sys.argv)

# SPDX-License-Identifier: MIT
# bench/report's helpers for repeated runs (median and min-max spread) and the
# per-hop breakdown from the services' choreo_hop_*_seconds histograms.
"""Median and spread of repeated runs; where one saga hop's time goes."""
import re

# /metrics histograms of one hop (events/metrics.c), by the name bench/report uses
HOP_HISTS = {"choreo_hop_transit_seconds": "hop_transit",
             "choreo_hop_queue_seconds": "hop_queue",
             "choreo_hop_outbuf_seconds": "hop_outbuf",
             "choreo_hop_rtt_seconds": "hop_rtt",
             "choreo_hop_parse_seconds": "hop_parse",
             "choreo_hop_handler_seconds": "hop_handler",
             "choreo_hop_committed_seconds": "hop_committed",
             "choreo_hop_relay_seconds": "hop_relay",
             "choreo_hop_stay_seconds": "hop_stay"}

# A record's timestamp is whole milliseconds, floored, taken at its producer's
# send call: the transit from it overstates by half a millisecond on average.
TIMESTAMP_FLOOR_MS = 0.5

# The breakdown's stages, in a hop's order: (key, label).
STAGES = [
    ("queue_ms", "producer queue + linger (send call -> request buffer)"),
    ("outbuf_ms", "request buffer -> sent"),
    ("rtt_ms", "broker: produce request -> answer (acks=all)"),
    ("fetch_ms", "next consumer's fetch and poll wake-up (after the ack -> poll returns)"),
    ("parse_ms", "parse + validate"),
    ("handler_ms", "handler: inbox claim, state, emitted events into the outbox"),
    ("commit_ms", "transaction: begin, offsets, commit + fsync"),
    ("relay_ms", "relay: commit -> send call of the first emitted record"),
]


def median(values):
    vals = sorted(v for v in values if v is not None)
    if not vals:
        return None
    mid = len(vals) // 2
    return vals[mid] if len(vals) % 2 else (vals[mid - 1] + vals[mid]) / 2


def spread(values, digits=3):
    """{"median", "min", "max", "runs"} of the runs' values (None left out)."""
    vals = [v for v in values if v is not None]
    if not vals:
        return None
    r = lambda v: round(v, digits)
    return {"median": r(median(vals)), "min": r(min(vals)), "max": r(max(vals)),
            "runs": [r(v) for v in vals]}


def split_label(label):
    """'rate-100-r2' -> ('rate-100', 2); a label without a run number is run 1."""
    m = re.match(r"^(.*)-r(\d+)$", label)
    return (m.group(1), int(m.group(2))) if m else (label, 1)


def median_run(runs, key):
    """The run whose key(run) is the median (the lower one of an even count)."""
    ranked = sorted((r for r in runs if key(r) is not None), key=key)
    if not ranked:
        return runs[0] if runs else None
    return ranked[(len(ranked) - 1) // 2]


def hop_summary(h, quantile):
    """Mean and p50 in ms of one hop histogram (bench/report's diffed form)."""
    if not h or h["count"] <= 0:
        return {}
    return {"mean_ms": round(1000 * h["sum"] / h["count"], 3),
            "p50_ms": round(1000 * (quantile(h, 0.5) or 0), 3), "count": int(h["count"])}


def breakdown(summary):
    """One hop's stages in ms (means), from a run's summary over all services:
    transit = a record's timestamp (its send call) -> the poll that returned it,
    less the timestamp's floor; of it, the producer's queue, request buffer and
    round trip (librdkafka's statistics) and the rest, the next consumer's fetch
    and wake-up. Then the consuming service's
    batch: parse, handler, commit (poll -> committed, less parse and handler),
    relay (commit -> send). stay = poll -> send, the service's whole part."""
    g = lambda k: (summary.get(k) or {}).get("mean_ms")
    transit = g("hop_transit")
    queue, outbuf, rtt = g("hop_queue"), g("hop_outbuf"), g("hop_rtt")
    produce = None if None in (queue, outbuf, rtt) else queue + outbuf + rtt
    parse, handler, committed = g("hop_parse"), g("hop_handler"), g("hop_committed")
    relay, stay = g("hop_relay"), g("hop_stay")
    if transit is None or stay is None:
        return None
    transit = max(transit - TIMESTAMP_FLOOR_MS, 0.0)
    out = {"transit_ms": transit, "queue_ms": queue, "outbuf_ms": outbuf, "rtt_ms": rtt,
           "produce_ms": produce,
           "fetch_ms": None if produce is None else transit - produce,
           "parse_ms": parse, "handler_ms": handler,
           "commit_ms": None if None in (committed, parse, handler)
           else committed - parse - handler,
           "relay_ms": relay, "stay_ms": stay, "hop_ms": transit + stay}
    out["records"] = (summary.get("hop_transit") or {}).get("count")
    out["batches"] = (summary.get("hop_stay") or {}).get("count")
    return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in out.items()}


def breakdown_runs(per_run):
    """Median and spread of each stage over the runs' breakdowns (None left out)."""
    per_run = [b for b in per_run if b]
    if not per_run:
        return None
    keys = [k for k, _ in STAGES] + ["produce_ms", "transit_ms", "stay_ms", "hop_ms"]
    out = {k: median([b.get(k) for b in per_run]) for k in keys}
    out = {k: None if v is None else round(v, 3) for k, v in out.items()}
    out["spread"] = {k: spread([b.get(k) for b in per_run]) for k in keys}
    out["runs"] = per_run
    return out


def breakdown_rows(bd, fmt):
    """Rows (figure, median, note with the spread) of bench/report's table."""
    if not bd:
        return []
    sp = bd.get("spread") or {}

    def rng(k):
        s = sp.get(k)
        return "" if not s or len(s["runs"]) < 2 else "%s-%s over %d runs" % (
            fmt(s["min"], "{:.2f}"), fmt(s["max"], "{:.2f}"), len(s["runs"]))
    rows = [("one hop, mean ms at 100/s (inventory, payments, orders): sent -> next sent",
             fmt(bd.get("hop_ms"), "{:.2f}"), rng("hop_ms"))]
    for k, label in STAGES:
        rows.append(("  " + label, fmt(bd.get(k), "{:.2f}"), rng(k)))
    return rows

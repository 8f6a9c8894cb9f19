"""Plot a demo scrape (examples/demo.rs --scrape) as the migration picture in README.md.

    python3 scripts/migration_picture.py SCRAPE OUT.png

SCRAPE lines: `<unix ms> <target> <prometheus sample line>` for the cutover_* samples of each
process (capture, run, and the demo's own data-access layer), and `<unix ms> # <text>` for the
demo's phase marks. The panels are the dashboard's main ones (infra/observability/
dashboard.json), computed the way Prometheus would: rates from counter deltas between scrapes,
quantiles from histogram bucket deltas.
"""

import collections
import re
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

SAMPLE = re.compile(r"^(\w+)(?:\{(.*)\})? (\S+)$")
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
STAGES = ["off", "dualwrite", "shadow", "live", "rampdown", "complete"]
STAGE_COLOURS = {
    "off": "#9e9e9e",
    "dualwrite": "#64b5f6",
    "shadow": "#ffb74d",
    "live": "#81c784",
    "rampdown": "#ba68c8",
    "complete": "#2e7d32",
}


def load(path):
    """series[(target, name, labels)] = [(t, v)], marks = [(t, text)], t in ms."""
    series = collections.defaultdict(list)
    marks = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            parts = line.rstrip("\n").split(" ", 2)
            if len(parts) < 3:
                continue
            ts, target, rest = int(parts[0]), parts[1], parts[2]
            if target == "#":
                marks.append((ts, rest))
                continue
            m = SAMPLE.match(rest)
            if not m:
                continue
            labels = tuple(sorted(LABEL.findall(m.group(2) or "")))
            try:
                value = float(m.group(3))
            except ValueError:
                continue
            series[(target, m.group(1), labels)].append((ts, value))
    return series, marks


def select(series, name, target=None):
    return {
        k: v
        for k, v in series.items()
        if k[1] == name and (target is None or k[0] == target)
    }


def rate(points, t0, window_ms=6000):
    """Per-second rate over `window_ms` at each scrape (counter resets count from zero)."""
    out = []
    for i, (t, v) in enumerate(points):
        j = i
        while j > 0 and t - points[j - 1][0] <= window_ms:
            j -= 1
        if j == i:
            continue
        tj, vj = points[j]
        dv = v - vj if v >= vj else v
        out.append(((t - t0) / 1000, dv / ((t - tj) / 1000)))
    return out


def summed_rate(series_dict, t0, window_ms=6000):
    """The rate of the sum of several counters, on a common time grid."""
    total = collections.defaultdict(float)
    for points in series_dict.values():
        for t, r in rate(points, t0, window_ms):
            total[round(t)] += r
    return sorted(total.items())


def quantile(buckets, q):
    """Prometheus' histogram_quantile over [(le, count)] (cumulative counts)."""
    buckets = sorted(buckets)
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    prev_le, prev_c = 0.0, 0.0
    for le, c in buckets:
        if c >= rank:
            if le == float("inf"):
                return prev_le
            if c == prev_c:
                return le
            return prev_le + (le - prev_le) * (rank - prev_c) / (c - prev_c)
        prev_le, prev_c = le, c
    return prev_le


def latency_quantiles(series, name, t0, qs, target, window_ms=10000):
    """[(t, {q: seconds or nan})] from the bucket deltas over `window_ms` of one target's
    histogram, its label sets summed (nan where the window saw no sample: a gap, not a line)."""
    by_time = collections.defaultdict(lambda: collections.defaultdict(float))
    for (tgt, n, labels), points in series.items():
        if n != name + "_bucket" or tgt != target:
            continue
        le = dict(labels).get("le")
        le = float("inf") if le == "+Inf" else float(le)
        for t, v in points:
            by_time[t][le] += v
    times = sorted(by_time)
    out = []
    for i, t in enumerate(times):
        j = i
        while j > 0 and t - times[j - 1] <= window_ms:
            j -= 1
        if j == i:
            continue
        delta = [(le, by_time[t][le] - by_time[times[j]].get(le, 0.0)) for le in by_time[t]]
        vals = {q: quantile(delta, q) for q in qs}
        out.append(((t - t0) / 1000, {q: float("nan") if v is None else v for q, v in vals.items()}))
    return out


def draw_marks(ax, marks, t0, label=False):
    """Each phase mark as a dotted line; numbered on the top panels (the key is in the title)."""
    span = max((marks[-1][0] - t0) / 1000, 1.0) if marks else 1.0
    last_x, level = None, 0
    for i, (t, _) in enumerate(marks, 1):
        x = (t - t0) / 1000
        ax.axvline(x, color="#616161", lw=0.7, ls=":", zorder=0)
        if label:
            # Marks close together get their numbers stacked instead of overprinted.
            level = level + 1 if last_x is not None and x - last_x < span * 0.025 else 0
            last_x = x
            ax.text(
                x,
                0.985 - 0.06 * (level % 3),
                str(i),
                fontsize=7,
                transform=ax.get_xaxis_transform(),
                ha="center",
                va="top",
                color="#424242",
                bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.8},
            )


def phase_key(marks, per_line=6):
    items = [f"{i} {text}" for i, (_, text) in enumerate(marks, 1)]
    lines = [" · ".join(items[k : k + per_line]) for k in range(0, len(items), per_line)]
    return "\n".join(lines)


def main(scrape, out):
    series, marks = load(scrape)
    if not series:
        sys.exit(f"{scrape}: no cutover_* samples")
    t0 = min(t for t, _ in marks) if marks else min(p[0][0] for p in series.values())
    fig, axes = plt.subplots(3, 2, figsize=(15, 11.5), sharex=True)
    fig.subplots_adjust(top=0.88, hspace=0.32, wspace=0.16, left=0.06, right=0.98, bottom=0.05)
    fig.suptitle(
        "cutover during a migration (scripts/demo, scraped every 2 s): "
        "what the dashboard's main panels show",
        fontsize=12,
        y=0.985,
    )
    fig.text(0.5, 0.955, "phases: " + phase_key(marks), ha="center", va="top", fontsize=8, color="#424242")

    # 1. Consumer lag per partition.
    ax = axes[0][0]
    lag = select(series, "cutover_consumer_lag", "run")
    for (_, _, labels), points in sorted(lag.items(), key=lambda kv: int(dict(kv[0][2]).get("partition", 0))):
        ax.plot(
            [(t - t0) / 1000 for t, _ in points],
            [v for _, v in points],
            lw=0.9,
            label="p" + dict(labels).get("partition", "?"),
        )
    ax.set_title("Consumer lag per partition (records behind)", fontsize=10)
    ax.legend(fontsize=6, ncol=6, loc="center right")
    draw_marks(ax, marks, t0, label=True)

    # 2. Item writes by outcome.
    ax = axes[0][1]
    written = select(series, "cutover_items_written_total", "run")
    by_outcome = collections.defaultdict(dict)
    for k, v in written.items():
        by_outcome[dict(k[2]).get("outcome")][k] = v
    colours = {"applied": "#2e7d32", "stale": "#f9a825", "poison": "#c62828"}
    for outcome in ["applied", "stale", "poison"]:
        pts = summed_rate(by_outcome.get(outcome, {}), t0)
        total = sum(p[-1][1] for p in by_outcome.get(outcome, {}).values())
        ax.plot(
            [t for t, _ in pts],
            [r for _, r in pts],
            color=colours[outcome],
            lw=1,
            label=f"{outcome} ({total:.0f} in all)",
        )
    ax.set_title("DynamoDB item writes per second by outcome", fontsize=10)
    ax.legend(fontsize=7, loc="center right")
    draw_marks(ax, marks, t0, label=True)

    # 3. End-to-end latency.
    ax = axes[1][0]
    lat = latency_quantiles(series, "cutover_e2e_latency_seconds", t0, [0.5, 0.99], "run")
    for q, colour in [(0.5, "#1565c0"), (0.99, "#c62828")]:
        ax.plot(
            [t for t, _ in lat],
            [v[q] for _, v in lat],
            color=colour,
            lw=1,
            label=f"p{int(q * 100)}",
        )
    ax.set_yscale("log")
    ax.set_ylabel("seconds", fontsize=8)
    ax.set_title(
        "End-to-end latency, MySQL commit → DynamoDB write (binlog changes; top bucket 300 s)",
        fontsize=10,
    )
    ax.legend(fontsize=7, loc="upper right")
    draw_marks(ax, marks, t0)

    # 4. Capture: rows sent per second, snapshot vs binlog; binlog lag.
    ax = axes[1][1]
    rows = select(series, "cutover_capture_rows_total", "capture")
    load_rows = {k: v for k, v in rows.items() if dict(k[2]).get("op") == "load"}
    cdc_rows = {k: v for k, v in rows.items() if dict(k[2]).get("op") != "load"}
    for label, d, colour in [("snapshot rows", load_rows, "#6a1b9a"), ("binlog changes", cdc_rows, "#00838f")]:
        pts = summed_rate(d, t0)
        ax.plot([t for t, _ in pts], [r for _, r in pts], color=colour, lw=1, label=label + "/s")
    ax.set_title("cutover capture: rows sent to Kafka per second", fontsize=10)
    ax2 = ax.twinx()
    ck = select(series, "cutover_capture_checkpoint_timestamp_seconds", "capture")
    for points in ck.values():
        ax2.plot(
            [(t - t0) / 1000 for t, _ in points],
            [max(0.0, t / 1000 - v) for t, v in points],
            color="#ef6c00",
            lw=0.8,
            ls="--",
            label="checkpoint age (s)",
        )
    ax2.tick_params(labelsize=7)
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, fontsize=7, loc="upper right")
    draw_marks(ax, marks, t0)

    # 5. Each path's stage: calls per second through the data-access layer, coloured by stage.
    ax = axes[2][0]
    ops = select(series, "cutover_flags_ops_total")
    paths = sorted({dict(k[2]).get("path") for k in ops})
    for i, path in enumerate(paths):
        for stage in STAGES:
            d = {k: v for k, v in ops.items() if dict(k[2]).get("path") == path and dict(k[2]).get("stage") == stage}
            pts = [(t, r) for t, r in summed_rate(d, t0) if r > 0]
            for t, r in pts:
                ax.barh(i, 2.0, left=t - 2.0, height=0.6, color=STAGE_COLOURS[stage], lw=0)
    ax.set_yticks(range(len(paths)))
    ax.set_yticklabels(paths, fontsize=8)
    ax.set_ylim(-0.6, max(len(paths), 1) - 0.4)
    handles = [matplotlib.patches.Patch(color=STAGE_COLOURS[s], label=s) for s in STAGES]
    ax.legend(handles=handles, fontsize=7, ncol=2, loc="upper left")
    ax.set_title("Each path's stage (data-access layer calls, by the stage that decided them)", fontsize=10)
    draw_marks(ax, marks, t0)

    # 6. Consistency checks and mismatches per path.
    ax = axes[2][1]
    checks = select(series, "cutover_access_consistency_checks_total")
    for path in sorted({dict(k[2]).get("path") for k in checks}):
        for result, ls in [("consistent", "-"), ("inconsistent", "--")]:
            d = {k: v for k, v in checks.items() if dict(k[2]).get("path") == path and dict(k[2]).get("result") == result}
            if not d:
                continue
            pts = summed_rate(d, t0)
            ax.plot([t for t, _ in pts], [r for _, r in pts], ls=ls, lw=1, label=f"{path} {result} checks/s")
    mism = select(series, "cutover_access_mismatches_total")
    total = collections.Counter()
    for k, points in mism.items():
        total[dict(k[2]).get("path")] += points[-1][1]
    text = ", ".join(f"{p}: {n:.0f}" for p, n in sorted(total.items())) or "none on any path"
    ax.set_title(f"Shadow/live consistency checks per path — mismatches: {text}", fontsize=10)
    ax.legend(fontsize=7, loc="upper right")
    draw_marks(ax, marks, t0)

    for ax in axes[-1]:
        ax.set_xlabel("seconds since capture and run started", fontsize=8)
    for row in axes:
        for ax in row:
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.25)
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])

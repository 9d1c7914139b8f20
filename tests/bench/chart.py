"""Draws chart.png from a bench results.json: latency percentiles, ratios to plain Envoy, body-size
scaling, where Envoy's CPU goes, TTFT percentiles, memory. Medians over repeats; error bars span the
repeats' range. Usage: .venv/bin/python tests/bench/chart.py results.json chart.png
"""
import json
import math
import statistics
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

VARIANTS = ["plain", "wasm-min", "wasm-buffer", "plugin"]
LABELS = {"plain": "plain Envoy", "wasm-min": "+ minimal Wasm", "wasm-buffer": "+ buffer probe", "plugin": "+ plugin"}
COLORS = {"plain": "#4c72b0", "wasm-min": "#8c8c8c", "wasm-buffer": "#dd8452", "plugin": "#c44e52",
          "direct": "#55a868", "plugin-no-edit": "#8172b3"}


def finite(xs):
    return [x for x in xs if isinstance(x, (int, float)) and math.isfinite(x)]


def med(xs):
    xs = finite(xs)
    return statistics.median(xs) if xs else float("nan")


def err(xs):
    xs = finite(xs)
    if not xs:
        return [0.0, 0.0]
    m = statistics.median(xs)
    return [m - min(xs), max(xs) - m]


def num(x):
    return float(x) if isinstance(x, (int, float)) else float("nan")


def spread_of(s):
    """(median, [below, above]) of a Spread; JSON turns NaN into null."""
    m, lo, hi = num(s.get("median")), num(s.get("min")), num(s.get("max"))
    if not math.isfinite(m):
        return m, [0.0, 0.0]
    return m, [max(0.0, m - lo) if math.isfinite(lo) else 0.0, max(0.0, hi - m) if math.isfinite(hi) else 0.0]


def latency_panel(ax, raw):
    pcts = [("p50", "p50"), ("p90", "p90"), ("p99", "p99"), ("p999", "p99.9")]
    present = [v for v in VARIANTS if any(v in r["runs"] for r in raw["nonStreaming"])]
    width = 0.8 / max(1, len(present))
    for i, v in enumerate(present):
        vals = [med([r["runs"][v]["latency"]["latencyUs"][k] for r in raw["nonStreaming"] if v in r["runs"]]) for k, _ in pcts]
        errs = [err([r["runs"][v]["latency"]["latencyUs"][k] for r in raw["nonStreaming"] if v in r["runs"]]) for k, _ in pcts]
        xs = [j + i * width for j in range(len(pcts))]
        ax.bar(xs, vals, width, yerr=list(zip(*errs)), label=LABELS[v], color=COLORS[v], capsize=2)
    ax.set_xticks([j + width * (len(present) - 1) / 2 for j in range(len(pcts))], [p for _, p in pcts])
    ax.set_yscale("log")
    ax.set_ylabel("µs (log)")
    ax.set_title("Non-streaming latency, one connection")
    ax.legend(fontsize=8)


def ttft_panel(ax, raw):
    targets = [("direct", "straight to stub"), ("plain", "plain Envoy"), ("wasm-buffer", "+ buffer probe"),
               ("plugin", "Envoy + plugin"), ("plugin-no-edit", "+ plugin, no body rewrite")]
    targets = [(t, label) for t, label in targets if any(t in r["ttft"] for r in raw["streaming"])]
    pcts = [("p50", "p50"), ("p90", "p90"), ("p99", "p99")]
    width = 0.8 / len(targets)
    for i, (t, label) in enumerate(targets):
        vals = [med([r["ttft"].get(t, {}).get("us", {}).get(k, float("nan")) for r in raw["streaming"]]) for k, _ in pcts]
        errs = [err([r["ttft"].get(t, {}).get("us", {}).get(k, float("nan")) for r in raw["streaming"]]) for k, _ in pcts]
        xs = [j + i * width for j in range(len(pcts))]
        ax.bar(xs, vals, width, yerr=list(zip(*errs)), label=label, color=COLORS[t], capsize=2)
    ax.set_xticks([j + width * (len(targets) - 1) / 2 for j in range(len(pcts))], [p for _, p in pcts])
    ax.set_ylabel("µs")
    ax.set_title("Streaming: time to first SSE bytes")
    ax.legend(fontsize=8)


def ratio_panel(ax, summary):
    names, vals, errs, colors = [], [], [], []
    for v in ["wasm-min", "wasm-buffer", "plugin"]:
        s = summary["nonStreaming"]["ratioToPlain"].get(v)
        if s is None:
            continue
        m, e = spread_of(s)
        names.append(f"req/s\n{LABELS[v]}")
        vals.append(m)
        errs.append(e)
        colors.append(COLORS[v])
    for t in summary["streaming"]["tokensPerS"]:
        m, e = spread_of(t["ratio"])
        names.append(f"tokens/s\n{t['concurrency']} streams")
        vals.append(m)
        errs.append(e)
        colors.append("#937860")
    xs = list(range(len(vals)))
    ax.bar(xs, vals, 0.6, yerr=list(zip(*errs)) if errs else None, color=colors, capsize=3)
    for x, v in zip(xs, vals):
        if math.isfinite(v):
            ax.text(x, v + 0.01, f"{v:.3f}", ha="center", va="bottom", fontsize=8)
    ax.axhline(0.95, color="black", linestyle="--", linewidth=1, label="target 0.95")
    ax.set_xticks(xs, names, fontsize=7)
    tops = [v + e[1] for v, e in zip(vals, errs) if math.isfinite(v)]
    ax.set_ylim(0, max([1.15] + [t + 0.08 for t in tops]))
    ax.set_ylabel("× plain Envoy (same run)")
    ax.set_title("Ratios to plain Envoy")
    ax.legend(fontsize=8, loc="lower right")


def size_panel(ax, summary):
    pts = summary["bodySize"]["points"]
    if not pts:
        ax.set_title("Body size: no data")
        return
    xs = [p["bytes"] for p in pts]

    def line(key, label, color, style="-o"):
        ys = [num(p[key]["median"]) for p in pts]
        ok = [(x, y) for x, y in zip(xs, ys) if isinstance(y, (int, float)) and math.isfinite(y) and y > 0]
        if ok:
            ax.plot([x for x, _ in ok], [y for _, y in ok], style, label=label, color=color, markersize=4)

    line("addedCpuUs", "plugin − plain (Envoy CPU)", COLORS["plugin"])
    line("bufferCpuUs", "buffer probe − plain", COLORS["wasm-buffer"])
    line("pluginOwnCpuUs", "plugin − buffer probe", "#8172b3")
    node = [(p["bytes"], p["nodeScanUs"]) for p in pts if p.get("nodeScanUs")]
    if node:
        ax.plot([x for x, _ in node], [y for _, y in node], "--s", label="scanJson alone (V8/Node)", color="#55a868", markersize=4)
    fit = summary["bodySize"]["fitAddedCpu"]
    if math.isfinite(num(fit["slope"])) and math.isfinite(num(fit["intercept"])):
        # a + b·x drawn point by point: on log axes a straight line with an intercept is a curve.
        lo, hi = math.log10(min(xs)), math.log10(max(xs))
        fx = [10 ** (lo + (hi - lo) * i / 50) for i in range(51)]
        fit_pts = [(x, fit["intercept"] + fit["slope"] * x) for x in fx]
        fit_pts = [(x, y) for x, y in fit_pts if y > 0]
        if fit_pts:
            ax.plot([x for x, _ in fit_pts], [y for _, y in fit_pts], ":", color="black",
                    label=f"least squares {fit['intercept']:.0f} µs + {fit['slope'] * 1000:.2f} ns/B, R² {fit['r2']:.3f}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("request body (bytes)")
    ax.set_ylabel("µs per request (log)")
    ax.set_title("Scaling with body size")
    ax.legend(fontsize=7)


def cpu_panel(ax, summary):
    perf = summary["nonStreaming"].get("perfUsPerRequest")
    groups = [("envoy", "Envoy binary"), ("kernel", "kernel"), ("wasm-jit", "Wasm (V8 code)"), ("libc-other", "libc/other")]
    gcolors = ["#4c72b0", "#8c8c8c", "#c44e52", "#ccb974"]
    if perf:
        present = [v for v in VARIANTS if v in perf]
        bottoms = [0.0] * len(present)
        for (g, label), c in zip(groups, gcolors):
            vals = [num(perf[v][g]) for v in present]
            ax.bar(range(len(present)), vals, 0.6, bottom=bottoms, label=label, color=c)
            bottoms = [b + v for b, v in zip(bottoms, vals)]
        ax.set_xticks(range(len(present)), [LABELS[v] for v in present], fontsize=8)
        ax.set_title("Envoy CPU per request, by where it runs (perf)")
        ax.legend(fontsize=8)
    else:
        cpu = summary["nonStreaming"]["envoyCpuUsPerRequest"]
        present = [v for v in VARIANTS if v in cpu]
        vals, errs = zip(*[spread_of(cpu[v]) for v in present]) if present else ([], [])
        ax.bar(range(len(present)), vals, 0.6, yerr=list(zip(*errs)) if errs else None, color=[COLORS[v] for v in present], capsize=3)
        ax.set_xticks(range(len(present)), [LABELS[v] for v in present], fontsize=8)
        ax.set_title("Envoy CPU per request")
    ax.set_ylabel("µs per request")


def memory_panel(ax, raw):
    mem = raw.get("memory")
    if not mem:
        ax.set_title("Memory: no data")
        return
    cps = mem["checkpoints"]
    xs = [max(1, c["requests"]) for c in cps]
    ax.plot(xs, [c["rssBytes"] / 2**20 for c in cps], "-o", label="Envoy RSS", color=COLORS["plugin"])
    alloc = [(x, c["memoryAllocated"]) for x, c in zip(xs, cps) if c["memoryAllocated"] is not None]
    if alloc:
        ax.plot([x for x, _ in alloc], [a / 2**20 for _, a in alloc], "-s", label="server.memory_allocated", color=COLORS["plain"])
    vm = [(x, c["wasmVmBytes"]) for x, c in zip(xs, cps) if c["wasmVmBytes"] is not None]
    if vm:
        ax.plot([x for x, _ in vm], [a / 2**20 for _, a in vm], "-^", label="Wasm VM memory", color="#55a868")
    ax.set_xscale("log")
    ax.set_ylim(bottom=0)
    ax.set_xlabel("requests served (log)")
    ax.set_ylabel("MiB")
    ax.set_title("Memory (Envoy + plugin)")
    ax.legend(fontsize=8)


def main():
    src, out = sys.argv[1], sys.argv[2]
    with open(src, encoding="utf-8") as f:
        raw = json.load(f)
    summary = raw["summary"]
    m = raw["machine"]
    fig, axes = plt.subplots(2, 3, figsize=(18, 10))
    latency_panel(axes[0][0], raw)
    ratio_panel(axes[0][1], summary)
    ttft_panel(axes[0][2], raw)
    size_panel(axes[1][0], summary)
    cpu_panel(axes[1][1], summary)
    memory_panel(axes[1][2], raw)
    fig.suptitle(f"llm-gateway bench {raw['startedAt'][:16].replace('T', ' ')} UTC — {m['nproc']} cores {m['cpuModel']}, "
                 f"Envoy {m['envoy']}, plugin.wasm {raw['plugin']['bytes']} B, {raw['options']['repeats']} repeat(s)"
                 + (" — SMOKE" if raw["options"]["smoke"] else ""), fontsize=12)
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    fig.savefig(out, dpi=100)


if __name__ == "__main__":
    main()

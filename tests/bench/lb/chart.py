"""Draws chart.png from a bench-lb results.json: TTFT percentiles per policy, prefix-cache hit rate against
the achievable maximum, requests per replica, and the sensitivity runs.
Usage: .venv/bin/python tests/bench/lb/chart.py results.json chart.png
"""
import json
import sys
import textwrap

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLORS = {
    "round-robin": "#8c8c8c",
    "least-request": "#4c72b0",
    "prefix-affinity": "#c44e52",
    "prefix-affinity-64k": "#dd8452",
    "load-aware": "#55a868",
    "load-aware-64k": "#8172b3",
}


def ttft_panel(ax, policies):
    pcts = [("ttft_p50_ms", "p50"), ("ttft_p90_ms", "p90"), ("ttft_p99_ms", "p99")]
    width = 0.8 / max(1, len(policies))
    for i, p in enumerate(policies):
        xs = [j + i * width for j in range(len(pcts))]
        vals = [p[k] if p[k] is not None else 0 for k, _ in pcts]
        ax.bar(xs, vals, width, label=p["policy"], color=COLORS.get(p["policy"], "#55a868"))
        for x, v in zip(xs, vals):
            ax.text(x, v, f"{v:.0f}", ha="center", va="bottom", fontsize=7)
    ax.set_xticks([j + width * (len(policies) - 1) / 2 for j in range(len(pcts))], [n for _, n in pcts])
    ax.set_ylabel("TTFT at the replica (simulated ms)")
    ax.set_title("Time to first token, same offered load")
    ax.legend(fontsize=8)


def hit_panel(ax, policies, achievable):
    names = [p["policy"] for p in policies]
    vals = [p["prefix_cache_hit_rate"] * 100 for p in policies]
    ax.bar(range(len(vals)), vals, 0.6, color=[COLORS.get(n, "#55a868") for n in names])
    for x, v in enumerate(vals):
        ax.text(x, v, f"{v:.1f}%", ha="center", va="bottom", fontsize=8)
    ax.axhline(achievable * 100, color="black", linestyle="--", linewidth=1, label=f"achievable {achievable * 100:.1f}%")
    ax.axhline(achievable * 80, color="black", linestyle=":", linewidth=1, label="80% of achievable")
    ax.set_xticks(range(len(vals)), names)
    ax.set_ylim(0, 100)
    ax.set_ylabel("prompt tokens from the prefix cache (%)")
    ax.set_title("Prefix-cache hit rate (replicas' vLLM counters)")
    ax.legend(fontsize=8, loc="lower right")


def load_panel(ax, policies, factor):
    width = 0.8 / max(1, len(policies))
    for i, p in enumerate(policies):
        counts = list(p["requests_per_replica"].values())
        mean = sum(counts) / len(counts) if counts else 1
        xs = [j + i * width for j in range(len(counts))]
        ax.bar(xs, [c / mean for c in counts], width, label=f"{p['policy']} (max {p['max_replica_load_ratio']:.2f})",
               color=COLORS.get(p["policy"], "#55a868"))
    ax.axhline(factor, color="black", linestyle="--", linewidth=1, label=f"load factor {factor}")
    n = len(policies[0]["requests_per_replica"]) if policies else 0
    ax.set_xticks([j + width * (len(policies) - 1) / 2 for j in range(n)], [f"replica {j}" for j in range(n)])
    ax.set_ylabel("requests / mean per replica")
    ax.set_title("Load per replica")
    ax.legend(fontsize=7)


def sensitivity_panel(ax, raw):
    rows = [("base", [p for p in raw["policies"] if p["policy"] != "round-robin"])]
    rows += [(v["description"], v["results"]) for v in raw["sensitivity"]]
    if len(rows) == 1:
        ax.set_title("Sensitivity: not run")
        ax.axis("off")
        return
    names = ["least-request", "prefix-affinity", "load-aware"]
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        vals = []
        for _, rs in rows:
            r = next((x for x in rs if x["policy"] == name), None)
            vals.append(r["ttft_p90_ms"] if r and r["ttft_p90_ms"] is not None else 0)
        xs = [j + i * width for j in range(len(rows))]
        ax.bar(xs, vals, width, label=name, color=COLORS[name])
        for x, v in zip(xs, vals):
            ax.text(x, v, f"{v:.0f}", ha="center", va="bottom", fontsize=7)
    ax.set_xticks([j + width * (len(names) - 1) / 2 for j in range(len(rows))], [textwrap.fill(n, 16) for n, _ in rows], fontsize=8)
    ax.set_ylabel("TTFT p90 (simulated ms)")
    ax.set_title("Sensitivity of TTFT p90 to the replica model")
    ax.legend(fontsize=8)


def main():
    src, out = sys.argv[1], sys.argv[2]
    with open(src, encoding="utf-8") as f:
        raw = json.load(f)
    fig, axes = plt.subplots(2, 2, figsize=(14, 10))
    ttft_panel(axes[0][0], raw["policies"])
    floor = raw["workload"].get("ttft_floor_p90_ms")
    if floor is not None:
        axes[0][0].axhline(floor, color="black", linestyle=":", linewidth=1)
        axes[0][0].text(2.9, floor, f"p90 floor {floor:.0f}", ha="right", va="bottom", fontsize=7)
    hit_panel(axes[0][1], raw["policies"], raw["workload"]["achievable_hit_rate"])
    load_panel(axes[1][0], raw["policies"], raw["options"]["hashBalanceFactor"] / 100)
    sensitivity_panel(axes[1][1], raw)
    m = raw["machine"]
    fig.suptitle(f"llm-gateway bench-lb {raw['startedAt'][:16].replace('T', ' ')} UTC — {raw['options']['replicas']} simulated "
                 f"replicas of {raw['workload']['spec']['model']}, {raw['workload']['offered_rps']:.1f} req/s — {m['nproc']} cores, Envoy {m['envoy']}",
                 fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    fig.savefig(out, dpi=100)


if __name__ == "__main__":
    main()

"""Draws the Grafana dashboard's panels from the series render-dashboard.ts had Prometheus evaluate:
the dashboard's grid layout (24 columns), its titles and units, Grafana's dark theme and classic
palette. Usage: .venv/bin/python tests/harness/render-dashboard.py data.json out.png
"""
import json
import math
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator, MultipleLocator  # noqa: E402

BG = "#111217"
PANEL = "#181b1f"
BORDER = "#2c3235"
TEXT = "#ccccdc"
MUTED = "#8e8e9e"
GRID = "#2a2d33"
PALETTE = ["#73bf69", "#f2cc0c", "#8ab8ff", "#ff780a", "#f2495c", "#5794f2", "#b877d9", "#705da0", "#37872d", "#fade2a"]
COLORS = {"green": "#73bf69", "red": "#f2495c", "yellow": "#fade2a", "orange": "#ff9830", "blue": "#5794f2"}

COL_IN = 0.62     # inches per grid column
UNIT_IN = 0.29    # inches per grid row unit
HEADER_IN = 0.9   # title and variable bar
GAP_IN = 0.08


def fmt(value, unit, decimals=None):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "No data"
    if unit == "percentunit":
        d = 1 if decimals is None else decimals
        return f"{value * 100:.{d}f}%"
    if unit == "s":  # as Grafana shows seconds: below one second in ms
        if abs(value) >= 1 or value == 0:
            return f"{value:.2f} s" if value != 0 else "0 s"
        return f"{value * 1000:.0f} ms" if abs(value) >= 0.01 else f"{value * 1000:.1f} ms"
    if unit == "ms":
        if abs(value) >= 1000:
            return f"{value / 1000:.2f} s"
        return f"{value:.0f} ms" if abs(value) >= 10 or value == 0 else f"{value:.1f} ms"
    if unit == "bytes":
        for scale, suffix in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
            if abs(value) >= scale:
                return f"{value / scale:.1f} {suffix}"
        return f"{value:.0f} B"
    suffix = " req/s" if unit == "reqps" else ""
    for scale, s in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= scale:
            return f"{value / scale:.1f}{s}{suffix}"
    if decimals is not None:
        return f"{value:.{decimals}f}{suffix}"
    return (f"{value:.0f}" if abs(value) >= 100 else f"{value:.2g}" if value != 0 else "0") + suffix


def axis_fmt(unit):
    def f(v, _pos):
        if unit == "percentunit":
            return f"{v * 100:.0f}%" if v * 100 >= 1 or v == 0 else f"{v * 100:.1f}%"
        return fmt(v, unit)
    return FuncFormatter(f)


def clock(s, _pos=None):
    return f"{int(s // 60)}:{int(s % 60):02d}"


def points(series):
    xs = [p[0] for p in series["points"]]
    ys = [math.nan if p[1] is None else p[1] for p in series["points"]]
    return xs, ys


def last_value(panel):
    for s in panel["series"][:1]:
        for p in reversed(s["points"]):
            if p[1] is not None and not math.isnan(p[1]):
                return p[1]
    return None


def threshold_color(panel, value):
    color = COLORS["green"]
    for step in panel.get("thresholds", []):
        if step["value"] is None or (value is not None and value >= step["value"]):
            color = COLORS.get(step["color"], step["color"])
    return color


def frame(fig, rect, title):
    box = fig.add_axes(rect)
    box.set_facecolor(PANEL)
    for sp in box.spines.values():
        sp.set_color(BORDER)
    box.set_xticks([])
    box.set_yticks([])
    box.text(0.012, 0.985, title, transform=box.transAxes, ha="left", va="top", color=TEXT, fontsize=10.5, fontweight="bold")
    return box


def draw_stat(fig, rect, panel):
    frame(fig, rect, panel["title"])
    x, y, w, h = rect
    value = last_value(panel)
    color = threshold_color(panel, value)
    if panel["series"]:
        spark = fig.add_axes([x, y + 0.004, w, h * 0.42])
        spark.set_axis_off()
        xs, ys = points(panel["series"][0])
        spark.fill_between(xs, [0 if math.isnan(v) else v for v in ys], color=color, alpha=0.18, linewidth=0)
        spark.plot(xs, ys, color=color, linewidth=1, alpha=0.7)
        finite = [v for v in ys if not math.isnan(v)]
        spark.set_ylim(0, (max(finite) if finite else 1) * 1.15 or 1)
        spark.set_xlim(xs[0] if xs else 0, xs[-1] if xs else 1)
    fig.text(x + w / 2, y + h * 0.48, fmt(value, panel["unit"], panel.get("decimals")), ha="center", va="center", color=color, fontsize=19, fontweight="bold")


def draw_timeseries(fig, rect, panel, data):
    frame(fig, rect, panel["title"])
    x, y, w, h = rect
    series = panel["series"]
    fig_w, fig_h = fig.get_figwidth(), fig.get_figheight()
    longest = max([len(s["name"]) for s in series] + [1])
    ncol = max(1, min(len(series), int(w * fig_w / (longest * 0.068 + 0.4))))
    legend_rows = math.ceil(len(series) / ncol) if series else 0
    # In inches from the panel's edges: title above, tick labels and legend rows below.
    below = 0.08 + 0.19 * legend_rows + 0.2
    above = 0.36
    left, right = 0.72, 0.12
    ax = fig.add_axes([x + left / fig_w, y + below / fig_h, w - (left + right) / fig_w, h - (below + above) / fig_h])
    ax.set_facecolor(PANEL)
    for sp in ax.spines.values():
        sp.set_visible(False)
    ax.tick_params(colors=MUTED, labelsize=7.5, length=0)
    ax.tick_params(axis="x", pad=5)
    ax.grid(True, color=GRID, linewidth=0.6)
    ax.set_xlim(0, data["seconds"])
    ax.xaxis.set_major_formatter(FuncFormatter(clock))
    # Whole minutes (or halves) after the start, so the first label does not sit on the y axis's.
    span = data["seconds"]
    tick = 60 if span >= 240 else 30 if span >= 90 else 10
    ax.xaxis.set_major_locator(FixedLocator([t for t in range(tick, int(span) + 1, tick)]))
    ax.yaxis.set_major_locator(MaxNLocator(4))
    ax.yaxis.set_major_formatter(axis_fmt(panel["unit"]))
    for a in data.get("annotations", []):
        ax.axvspan(a["from"], a["to"], color="#5794f2", alpha=0.07, linewidth=0)
        ax.axvline(a["from"], color="#5794f2", alpha=0.45, linewidth=0.8, linestyle="--")
    if not series:
        ax.text(0.5, 0.5, "No data", transform=ax.transAxes, ha="center", va="center", color=MUTED, fontsize=12)
        ax.set_ylim(0, 1)
        return
    handles = []
    if panel.get("stacked"):
        grid_x = sorted({p[0] for s in series for p in s["points"]})
        stacks = []
        for s in series:
            m = {p[0]: (0.0 if p[1] is None or math.isnan(p[1]) else p[1]) for p in s["points"]}
            stacks.append([m.get(t, 0.0) for t in grid_x])
        colors = [PALETTE[i % len(PALETTE)] for i in range(len(series))]
        polys = ax.stackplot(grid_x, stacks, colors=colors, alpha=0.55, linewidth=0.8, edgecolor="none")
        handles = list(polys)
    else:
        top = 0.0
        for i, s in enumerate(series):
            xs, ys = points(s)
            color = PALETTE[i % len(PALETTE)]
            (line,) = ax.plot(xs, ys, color=color, linewidth=1.3)
            ax.fill_between(xs, ys, color=color, alpha=0.06, linewidth=0)
            handles.append(line)
            finite = [v for v in ys if not math.isnan(v)]
            top = max([top] + finite)
        ax.set_ylim(0, top * 1.12 if top > 0 else 1)
        if panel["unit"] == "bytes" and top > 0:
            ax.yaxis.set_major_locator(MultipleLocator(2 ** math.ceil(math.log2(top * 1.12 / 4))))
    fig.legend(handles, [s["name"] or panel["title"] for s in series], loc="lower left",
               bbox_to_anchor=(x + w * 0.01, y + 0.03 / fig_h), ncol=ncol,
               frameon=False, fontsize=7.8, labelcolor=TEXT, handlelength=1.2, columnspacing=1.2, handletextpad=0.4)


def main():
    data = json.load(open(sys.argv[1]))
    out = sys.argv[2]
    panels = data["panels"]
    bottom = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels)
    width_in = 24 * COL_IN
    height_in = HEADER_IN + bottom * UNIT_IN + 0.35
    fig = plt.figure(figsize=(width_in, height_in), facecolor=BG)

    def rect(g):
        left = (g["x"] * COL_IN + GAP_IN) / width_in
        top_in = HEADER_IN + g["y"] * UNIT_IN
        bot = 1 - (top_in + g["h"] * UNIT_IN - GAP_IN) / height_in
        return [left, bot, (g["w"] * COL_IN - 2 * GAP_IN) / width_in, (g["h"] * UNIT_IN - 2 * GAP_IN) / height_in]

    fig.text(0.006, 1 - 0.3 / height_in, data["title"], color=TEXT, fontsize=16, fontweight="bold", va="center")
    minutes = round(data["seconds"] / 60)
    fig.text(0.994, 1 - 0.3 / height_in,
             f"rendered from real data: Envoy + the plugin + two vLLM-compatible stubs under {minutes} min of mixed load; "
             f"Prometheus evaluating the dashboard's own queries ($__rate_interval = {data['rateWindow']})",
             color=MUTED, fontsize=8.5, ha="right", va="center")
    chips = ["Data source  Prometheus", "Model  All", "Route  All", "Consumer  All"]
    cx = 0.006
    for chip in chips:
        t = fig.text(cx, 1 - 0.68 / height_in, chip, color=TEXT, fontsize=8.5, va="center",
                     bbox=dict(boxstyle="round,pad=0.35", facecolor=PANEL, edgecolor=BORDER))
        cx += (len(chip) * 0.075 + 0.45) / width_in
    legend = "   ".join(f"{clock(a['from'])}–{clock(a['to'])} {a['text']}" for a in data.get("annotations", []))
    if legend:
        fig.text(0.994, 1 - 0.68 / height_in, "shaded: " + legend, color="#8ab8ff", fontsize=8.5, ha="right", va="center")

    for p in panels:
        g = p["gridPos"]
        if p["type"] == "row":
            r = rect(g)
            fig.text(r[0], r[1] + r[3] / 2, "⌄ " + p["title"], color=TEXT, fontsize=12, fontweight="bold", va="center")
        elif p["type"] == "stat":
            draw_stat(fig, rect(g), p)
        else:
            draw_timeseries(fig, rect(g), p, data)
    fig.savefig(out, dpi=int(sys.argv[3]) if len(sys.argv) > 3 else 120, facecolor=BG)


if __name__ == "__main__":
    main()

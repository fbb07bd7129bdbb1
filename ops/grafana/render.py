#!/usr/bin/env python3
"""Draw a dashboard's panels from the data tests/monitoring wrote.

usage: render.py DATA.json OUT.png

DATA.json is what TestDashboardsAndAlertsReturnData writes with
FRAISEQL_DASHBOARD_DATA set: the dashboard's panels, each with the series
a real Prometheus returned for its queries over a scripted load. Needs
matplotlib (Debian: python3-matplotlib). See ops/grafana/render.sh.
"""
import json
import math
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

UNITS = {
    "s": lambda v: f"{v * 1000:.3g} ms" if v < 1 else f"{v:.3g} s",
    "bytes": lambda v: next(f"{v / d:.3g} {u}" for d, u in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB"), (1, "B")) if v >= d or d == 1),
    "ops": lambda v: f"{v:.3g}/s",
    "short": lambda v: f"{v:.4g}",
}


def main(src, out):
    d = json.load(open(src))
    panels = d["panels"]
    cols = 2
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(16, 3.2 * rows), squeeze=False)
    fig.suptitle(d["title"], fontsize=16, x=0.01, ha="left")
    t0 = d["from"]
    for ax, p in zip(axes.flat, panels):
        ax.set_title(p["title"], fontsize=10, loc="left")
        fmt = UNITS.get(p["unit"], UNITS["short"])
        if p["type"] == "table":
            ax.axis("off")
            rows_ = [[s["legend"] or "-", fmt(s["points"][-1][1])] for s in p["series"] if s["points"]]
            if rows_:
                ax.table(cellText=rows_, colLabels=["series", "value"], loc="center", cellLoc="left")
            continue
        drawn = 0
        for s in p["series"]:
            pts = [(t - t0, v) for t, v in s["points"] if not math.isnan(v)]
            if not pts:
                continue
            xs, ys = zip(*pts)
            ax.plot(xs, ys, label=s["legend"][:48], linewidth=1.2)
            drawn += 1
        if drawn == 0:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, color="grey")
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _, f=fmt: f(v)))
        ax.set_xlabel("seconds into the scripted load", fontsize=8)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
        if 0 < drawn <= 8:
            ax.legend(fontsize=7, loc="upper left")
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.tight_layout(rect=(0, 0, 1, 0.98))
    fig.savefig(out, dpi=80)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])

"""The benchmark's pictures, as SVG: a failover timeline per profile and fault (good and failed
requests per 100 ms, from the drills' watch), and throughput via the VIP against direct."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("svg")
import matplotlib.pyplot as plt

TIMELINE_FAULTS = ("haproxy-crash", "haproxy-hang", "keepalived-crash", "link-flap", "power-cycle")


def timeline_svg(timelines: dict[str, dict[str, list[tuple[float, int, int]]]], path: Path, title: str) -> None:
    """One row per fault, one column per profile; green: requests answered, red: failed."""
    profiles = list(timelines)
    faults = [f for f in TIMELINE_FAULTS if any(f in timelines[p] for p in profiles)]
    if not profiles or not faults:
        return
    fig, axes = plt.subplots(
        len(faults), len(profiles), figsize=(4 * len(profiles), 1.6 * len(faults)), sharey=True, squeeze=False
    )
    for r, fault in enumerate(faults):
        for c, profile in enumerate(profiles):
            ax = axes[r][c]
            points = timelines[profile].get(fault, [])
            xs = [t for t, _, _ in points]
            ax.bar(xs, [g for _, g, _ in points], width=0.1, align="edge", color="#2e8b57", linewidth=0)
            ax.bar(xs, [-f for _, _, f in points], width=0.1, align="edge", color="#d62728", linewidth=0)
            ax.axhline(0, color="black", linewidth=0.5)
            ax.set_xlim(0, max(xs, default=1))
            if r == 0:
                ax.set_title(profile)
            if c == 0:
                ax.set_ylabel(fault, rotation=0, ha="right", va="center", fontsize=8)
            ax.tick_params(labelsize=7)
    fig.suptitle(title + "  (per 100 ms: answered up, failed down; x: seconds)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, format="svg", metadata={"Date": None})
    plt.close(fig)


def throughput_svg(speed: dict[str, dict[str, Any]], path: Path, title: str) -> None:
    """Requests per second via the VIP and direct, per profile and load, with the ratio on top."""
    profiles = list(speed)
    loads = [load for load in ("keepalive_64", "new_connection_32") if all(load in speed[p] for p in profiles)]
    if not profiles or not loads:
        return
    fig, axes = plt.subplots(1, len(loads), figsize=(5 * len(loads), 3.2), squeeze=False)
    for i, load in enumerate(loads):
        ax = axes[0][i]
        xs = range(len(profiles))
        via = [speed[p][load]["via_vip_rps"] for p in profiles]
        direct = [speed[p][load]["direct_rps"] for p in profiles]
        ax.bar([x - 0.2 for x in xs], direct, width=0.4, label="direct to the 4 workers", color="#9aa5b1")
        bars = ax.bar([x + 0.2 for x in xs], via, width=0.4, label="via the VIP", color="#1f77b4")
        for bar, p in zip(bars, profiles, strict=True):
            ax.annotate(
                f"{speed[p][load]['ratio_via_direct']:.2f}x",
                (bar.get_x() + 0.2, bar.get_height()),
                ha="center",
                va="bottom",
                fontsize=8,
            )
        ax.set_xticks(list(xs), profiles)
        ax.set_title(load.replace("_", " "), fontsize=9)
        ax.set_ylabel("requests/s")
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, format="svg", metadata={"Date": None})
    plt.close(fig)

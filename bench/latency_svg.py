"""The latency curve as an SVG written by hand (no plotting dependency for one picture).

:func:`render` draws one panel per load (REST single events, REST batches): latency
(ms, log scale) against offered load (% of trackd's closed-loop throughput), p50, p99 and
p99.9 for trackd and for the bare aiohttp server at the same rates. Imports nothing of
trackd.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape


@dataclass(frozen=True)
class Point:
    server: str        # "trackd" or "bare"
    load: str          # "rest.single" or "rest.batch"
    percent: float     # offered load, % of trackd's closed-loop throughput
    p50_ms: float
    p99_ms: float
    p999_ms: float


COLOURS = {"trackd": "#1f5fbf", "bare": "#d9730d"}
NAMES = {"trackd": "trackd", "bare": "bare aiohttp"}
DASHES = {"p50_ms": "", "p99_ms": "6,3", "p999_ms": "2,3"}
LABELS = {"p50_ms": "p50", "p99_ms": "p99", "p999_ms": "p99.9"}
PANEL_W, PANEL_H, MARGIN_L, MARGIN_T, MARGIN_B, GAP = 380, 260, 60, 62, 50, 80


def _decades(points: Sequence[Point]) -> tuple[int, int]:
    values = [v for p in points for v in (p.p50_ms, p.p99_ms, p.p999_ms) if v > 0]
    if not values:
        return -1, 3
    return math.floor(math.log10(min(values))), math.ceil(math.log10(max(values)))


def render(points: Sequence[Point], titles: dict[str, str], subtitle: str) -> str:
    low, high = _decades(points)
    high = max(high, low + 1)
    loads = list(titles)
    width = MARGIN_L + len(loads) * (PANEL_W + GAP) + 10
    height = MARGIN_T + PANEL_H + MARGIN_B + 40
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="sans-serif" font-size="11">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{MARGIN_L}" y="16" font-size="13" font-weight="bold">Latency against '
           f'offered load (open loop, from the intended send time)</text>',
           f'<text x="{MARGIN_L}" y="31" fill="#555">{escape(subtitle)}</text>']
    for i, load in enumerate(loads):
        x0 = MARGIN_L + i * (PANEL_W + GAP)
        y0 = MARGIN_T

        def xy(percent: float, ms: float, x0: float = x0, y0: float = y0) -> tuple[float, float]:
            x = x0 + percent / 100 * PANEL_W
            y = y0 + PANEL_H - (math.log10(max(ms, 10.0 ** low)) - low) / (high - low) * PANEL_H
            return x, y

        out.append(f'<rect x="{x0}" y="{y0}" width="{PANEL_W}" height="{PANEL_H}" '
                   f'fill="none" stroke="#999"/>')
        out.append(f'<text x="{x0 + PANEL_W / 2}" y="{y0 - 6}" text-anchor="middle" '
                   f'font-weight="bold">{escape(titles[load])}</text>')
        for decade in range(low, high + 1):
            _, y = xy(0, 10.0 ** decade)
            out.append(f'<line x1="{x0}" y1="{y:.1f}" x2="{x0 + PANEL_W}" y2="{y:.1f}" '
                       f'stroke="#eee"/>')
            out.append(f'<text x="{x0 - 4}" y="{y + 4:.1f}" text-anchor="end">'
                       f'{10.0 ** decade:g}</text>')
        for percent in range(0, 101, 25):
            x, _ = xy(percent, 1)
            out.append(f'<text x="{x:.1f}" y="{y0 + PANEL_H + 14}" text-anchor="middle">'
                       f'{percent}%</text>')
        out.append(f'<text x="{x0 + PANEL_W / 2}" y="{y0 + PANEL_H + 30}" '
                   f'text-anchor="middle">offered load, % of trackd\'s closed-loop '
                   f'throughput</text>')
        out.append(f'<text x="{x0 - 44}" y="{y0 + PANEL_H / 2}" text-anchor="middle" '
                   f'transform="rotate(-90 {x0 - 44} {y0 + PANEL_H / 2})">latency, ms '
                   f'(log)</text>')
        for server in COLOURS:
            series = sorted((p for p in points if p.server == server and p.load == load),
                            key=lambda p: p.percent)
            for field, dash in DASHES.items():
                coords = [xy(p.percent, getattr(p, field)) for p in series]
                if not coords:
                    continue
                path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
                out.append(f'<polyline points="{path}" fill="none" stroke="{COLOURS[server]}" '
                           f'stroke-width="2" stroke-dasharray="{dash}"/>')
                for x, y in coords:
                    out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" '
                               f'fill="{COLOURS[server]}"/>')
    legend_y = MARGIN_T + PANEL_H + MARGIN_B + 20
    x = MARGIN_L
    for server, colour in COLOURS.items():
        for field, dash in DASHES.items():
            out.append(f'<line x1="{x}" y1="{legend_y - 4}" x2="{x + 24}" y2="{legend_y - 4}" '
                       f'stroke="{colour}" stroke-width="2" stroke-dasharray="{dash}"/>')
            out.append(f'<text x="{x + 28}" y="{legend_y}">{NAMES[server]} '
                       f'{LABELS[field]}</text>')
            x += 125
    out.append("</svg>")
    return "\n".join(out) + "\n"

"""Charts the admin draws on the server, as inline SVG: no script, no extra request."""

from dataclasses import dataclass
from datetime import datetime

from django.template.loader import render_to_string


@dataclass(frozen=True)
class Hour:
    start: datetime
    counts: dict[str, int]  # by delivery status


CHART_WIDTH, CHART_HEIGHT, CHART_TOP, CHART_BOTTOM = 720, 170, 14, 22
CHART_SERIES = (("succeeded", "#2e7d32"), ("failed", "#c62828"), ("pending", "#9e9e9e"))


def hourly_chart(hours: list[Hour], *, title: str) -> str:
    """An inline SVG of stacked bars (succeeded, failed, pending), one per hour; no script needed."""
    plot = CHART_HEIGHT - CHART_TOP - CHART_BOTTOM
    peak = max([sum(h.counts.values()) for h in hours] + [1])
    slot = CHART_WIDTH / max(len(hours), 1)
    bars = []
    for index, hour in enumerate(hours):
        base = CHART_TOP + plot
        segments = []
        for status, colour in CHART_SERIES:
            n = hour.counts.get(status, 0)
            if n:
                height = max(plot * n / peak, 1.0)
                base -= height
                segments.append({"y": round(base, 1), "height": round(height, 1), "colour": colour})
        summary = ", ".join(f"{hour.counts.get(status, 0)} {status}" for status, _ in CHART_SERIES)
        bars.append(
            {
                "x": round(index * slot + 2, 1),
                "width": round(slot - 4, 1),
                "segments": segments,
                "tooltip": f"{hour.start:%Y-%m-%d %H:00} UTC: {summary}",
                "label": f"{hour.start:%H:00}" if index % 6 == 0 else "",
                "label_x": round(index * slot + slot / 2, 1),
            }
        )
    totals = {status: sum(h.counts.get(status, 0) for h in hours) for status, _ in CHART_SERIES}
    return render_to_string(
        "admin/console/hourly_chart.html",
        {
            "title": title,
            "width": CHART_WIDTH,
            "height": CHART_HEIGHT,
            "top": CHART_TOP,
            "plot": plot,
            "baseline": CHART_TOP + plot,
            "label_y": CHART_HEIGHT - 6,
            "peak": peak,
            "bars": bars,
            "legend": [{"status": status, "colour": colour, "total": totals[status]} for status, colour in CHART_SERIES],
        },
    )

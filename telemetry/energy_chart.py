"""A daily energy bar chart as inline SVG: no script, no library, readable without a network.

Plain Python. Each bar's <title> gives its value on hover; a day with incomplete coverage is
drawn hatched and paler, so a short bar that only lacks data does not pass for a quiet day.
"""

from dataclasses import dataclass
from html import escape

COMPLETE = 0.999  # coverage from which a day counts as fully measured (float sums of seconds)
BAR_WIDTH, GAP, HEIGHT, LEFT, BOTTOM, TOP = 18, 4, 160, 48, 34, 14


@dataclass(frozen=True)
class ChartDay:
    label: str  # the local date, e.g. "2024-03-28"
    kwh: float
    coverage: float


def _title(day: ChartDay) -> str:
    note = "" if day.coverage >= COMPLETE else f", data for {day.coverage:.0%} of the day"
    return f"{day.label}: {day.kwh:.2f} kWh{note}"


def daily_bar_chart(days: list[ChartDay], caption: str) -> str:
    """The SVG of one bar per day (kWh), or an empty-state paragraph when no day has data."""
    if not any(day.coverage > 0 or day.kwh for day in days):
        return f'<p class="energy-chart-empty">No energy recorded {escape(caption)}.</p>'
    peak = max(max(day.kwh for day in days), 0.001)
    width = LEFT + len(days) * (BAR_WIDTH + GAP)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="energy-chart" role="img" width="{width}" height="{HEIGHT + TOP + BOTTOM}" '
        f'viewBox="0 0 {width} {HEIGHT + TOP + BOTTOM}" style="font:10px sans-serif">',
        f"<title>Consumption per local day, kWh, {escape(caption)}</title>",
        '<defs><pattern id="partial-day" width="4" height="4" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">'
        '<rect width="2" height="4" fill="#79aec8"/></pattern></defs>',
        f'<line x1="{LEFT - 2}" y1="{TOP + HEIGHT}" x2="{width}" y2="{TOP + HEIGHT}" stroke="#999"/>',
        f'<text x="{LEFT - 6}" y="{TOP + 4}" text-anchor="end">{peak:.1f}</text>',
        f'<text x="{LEFT - 6}" y="{TOP + HEIGHT}" text-anchor="end">0 kWh</text>',
    ]
    for index, day in enumerate(days):
        x = LEFT + index * (BAR_WIDTH + GAP)
        height = day.kwh / peak * HEIGHT if day.kwh > 0 else 0
        complete = day.coverage >= COMPLETE
        fill = "#417690" if complete else "url(#partial-day)"
        stroke = "" if complete else ' stroke="#417690" stroke-dasharray="2 2"'
        parts.append(
            f'<g class="{"day" if complete else "day partial"}"><title>{escape(_title(day))}</title>'
            f'<rect x="{x}" y="{TOP + HEIGHT - height:.1f}" width="{BAR_WIDTH}" height="{max(height, 1):.1f}" fill="{fill}"{stroke}/>'
            f'<text x="{x + BAR_WIDTH / 2}" y="{TOP + HEIGHT + 12}" text-anchor="middle">{escape(day.label[8:10])}</text>'
        )
        if day.label.endswith("-01") or index == 0:
            parts.append(f'<text x="{x}" y="{TOP + HEIGHT + 26}">{escape(day.label[:7])}</text>')
        if not complete:
            parts.append(f'<text x="{x + BAR_WIDTH / 2}" y="{TOP + HEIGHT - height - 3:.1f}" text-anchor="middle" fill="#ba2121">*</text>')
        parts.append("</g>")
    parts.append("</svg>")
    parts.append('<p class="help">Hatched bars marked * had data for part of the day only; hover a bar for its value.</p>')
    return "".join(parts)

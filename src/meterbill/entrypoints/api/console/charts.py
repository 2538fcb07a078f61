"""Bar charts as inline SVG, drawn on the server: no script, nothing fetched, readable by a
screen reader through their title and a table of the same figures beside them."""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

WIDTH, HEIGHT, PAD, AXIS = 600, 160, 4, 18


def bar_chart(title: str, labels: Sequence[str], series: Sequence[tuple[str, Sequence[int]]],
              *, unit: str = "") -> Markup:
    """Stacked bars, one per label; `series` is (css class, values) bottom-up."""
    count = max(1, len(labels))
    totals = [sum(values[i] for _, values in series) for i in range(len(labels))]
    top = max([*totals, 1])
    slot = (WIDTH - 2 * PAD) / count
    bar = max(1.0, slot * 0.7)
    plot = HEIGHT - AXIS - PAD
    parts = [f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
             f'aria-label="{escape(title)}" preserveAspectRatio="none">',
             f"<title>{escape(title)}</title>",
             f'<line class="axis" x1="{PAD}" y1="{PAD + plot}" x2="{WIDTH - PAD}" '
             f'y2="{PAD + plot}"/>']
    for i, label in enumerate(labels):
        x = PAD + i * slot + (slot - bar) / 2
        base = PAD + plot
        for css, values in series:
            height = plot * values[i] / top
            if height > 0:
                base -= height
                parts.append(f'<rect class="{escape(css)}" x="{x:.1f}" y="{base:.1f}" '
                             f'width="{bar:.1f}" height="{height:.1f}"><title>'
                             f'{escape(label)}: {values[i]:,}{escape(unit)}</title></rect>')
        if i in (0, count // 2, count - 1):
            parts.append(f'<text x="{x + bar / 2:.1f}" y="{HEIGHT - 4}" '
                         f'text-anchor="middle">{escape(label)}</text>')
    parts.append(f'<text x="{WIDTH - PAD}" y="{PAD + 10}" text-anchor="end">'
                 f"max {top:,}{escape(unit)}</text></svg>")
    return Markup("".join(parts))

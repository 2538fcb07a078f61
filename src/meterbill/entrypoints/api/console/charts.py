"""Bar charts as inline SVG, drawn on the server: no script, nothing fetched, readable by a
screen reader through their title and a table of the same figures beside them."""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

WIDTH, HEIGHT, PAD, AXIS, TOP = 1000, 180, 4, 20, 18


def bar_chart(title: str, labels: Sequence[str], series: Sequence[tuple[str, Sequence[int]]],
              *, unit: str = "") -> Markup:
    """Stacked bars, one per label; `series` is (css class, values) bottom-up."""
    count = max(1, len(labels))
    totals = [sum(values[i] for _, values in series) for i in range(len(labels))]
    top = max([*totals, 1])
    slot = (WIDTH - 2 * PAD) / count
    bar = max(1.0, slot * 0.7)
    plot = HEIGHT - AXIS - TOP
    parts = [f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
             f'aria-label="{escape(title)}">',
             f"<title>{escape(title)}</title>",
             f'<line class="axis" x1="{PAD}" y1="{TOP + plot}" x2="{WIDTH - PAD}" '
             f'y2="{TOP + plot}"/>']
    for i, label in enumerate(labels):
        x = PAD + i * slot + (slot - bar) / 2
        base = float(TOP + plot)
        for css, values in series:
            height = plot * values[i] / top
            if height > 0:
                base -= height
                parts.append(f'<rect class="{escape(css)}" x="{x:.1f}" y="{base:.1f}" '
                             f'width="{bar:.1f}" height="{height:.1f}"><title>'
                             f'{escape(label)}: {values[i]:,}{escape(unit)}</title></rect>')
        # The first, middle and last labels, kept inside the frame.
        anchor = {0: ("start", PAD), count - 1: ("end", WIDTH - PAD)}.get(
            i, ("middle", x + bar / 2)) if i in (0, count // 2, count - 1) else None
        if anchor is not None:
            parts.append(f'<text x="{anchor[1]:.1f}" y="{HEIGHT - 4}" '
                         f'text-anchor="{anchor[0]}">{escape(label)}</text>')
    parts.append(f'<text x="{PAD}" y="{TOP - 4}">highest {top:,}{escape(unit)}</text></svg>')
    return Markup("".join(parts))

"""The node x node picture of a run: one panel per network path, one cell per source/destination.

Green = every check of that pair and path passed, red = one failed (the cell names the diagnosed
cause, else the error kind), amber = the probe could not be run (no network verdict), grey = only
skipped. Plain SVG text: no dependency, opens in every browser and in the Allure report.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from html import escape
from typing import Any

from .labels import OUTSIDE, PATHS, cause_id

# precedence when several checks share a cell: the worst wins
RANK = {"failed": 3, "broken": 2, "passed": 1, "skipped": 0}
COLOURS = {"failed": "#d64545", "broken": "#e0a030", "passed": "#3aa757", "skipped": "#c8c8c8"}
SERVICE_COLUMNS = {"dns": "DNS"}  # a check without a destination node: the Service it dials
DEFAULT_SERVICE_COLUMN = "ClusterIP"


@dataclass(frozen=True)
class Record:
    """One checked path of one test."""

    check: str
    src: str
    dst: str  # node name, or a service column ("ClusterIP", "DNS")
    outcome: str  # passed | failed | broken | skipped
    cause: str = ""  # diagnosed cause id, e.g. stale-flannel-arp
    error: str = ""  # error kind from the probe, e.g. timeout
    nodeid: str = ""


@dataclass
class Cell:
    outcome: str = "skipped"
    records: list[Record] = field(default_factory=list)

    def add(self, r: Record) -> None:
        self.records.append(r)
        if RANK[r.outcome] > RANK[self.outcome]:
            self.outcome = r.outcome

    @property
    def label(self) -> str:
        """Short text in a red or amber cell: the most frequent cause, else the error kind."""
        bad = [r for r in self.records if r.outcome == self.outcome]
        if self.outcome == "broken":
            return "probe not run"
        if self.outcome != "failed":
            return ""
        named = Counter(r.cause for r in bad if r.cause)
        if named:
            return named.most_common(1)[0][0]
        kinds = Counter(r.error for r in bad if r.error)
        return kinds.most_common(1)[0][0] if kinds else "failed"

    @property
    def tooltip(self) -> str:
        counts = Counter(r.outcome for r in self.records)
        lines = [", ".join(f"{n} {o}" for o, n in sorted(counts.items()))]
        lines += [f"{r.outcome}: {r.nodeid}" + (f" ({r.cause})" if r.cause else "") for r in self.records[:12]]
        return "\n".join(lines)


@dataclass
class Matrix:
    """cells[check][(src, dst)]; nodes in name order, `outside` last among sources."""

    nodes: list[str]
    cells: dict[str, dict[tuple[str, str], Cell]] = field(default_factory=dict)

    def add(self, r: Record) -> None:
        self.cells.setdefault(r.check, {}).setdefault((r.src, r.dst), Cell()).add(r)

    def sources(self, check: str) -> list[str]:
        seen = {s for s, _ in self.cells.get(check, {})}
        return [n for n in self.nodes if n in seen] + sorted(seen - set(self.nodes), key=lambda s: (s == OUTSIDE, s))

    def destinations(self, check: str) -> list[str]:
        seen = {d for _, d in self.cells.get(check, {})}
        return [n for n in self.nodes if n in seen] + sorted(seen - set(self.nodes))

    def checks(self) -> list[str]:
        known = [c for c in PATHS if c in self.cells]
        return known + sorted(set(self.cells) - set(known))

    def outcome(self, check: str, src: str, dst: str) -> str | None:
        cell = self.cells.get(check, {}).get((src, dst))
        return cell.outcome if cell else None

    @property
    def all_passed(self) -> bool:
        return all(c.outcome in ("passed", "skipped") for panel in self.cells.values() for c in panel.values())


def records_from_report(nodeid: str, outcome: str, paths: list[dict[str, Any]], causes: list[str]) -> list[Record]:
    """Records of one test report. `outcome` is the report's (passed/failed/skipped, or broken)."""
    out = []
    cause = cause_id(causes[0]) if causes else ""
    for p in paths:
        src, check = p.get("src_node"), p.get("check")
        if not src or not check:
            continue
        err = str(p.get("error") or "")
        this = outcome
        if err == "probe_not_run":
            this = "broken" if outcome != "skipped" else outcome
        dst = p.get("dst_node") or SERVICE_COLUMNS.get(check, DEFAULT_SERVICE_COLUMN)
        out.append(Record(check, src, dst, this, cause if this == "failed" else "", err, nodeid))
    return out


def build(nodes: list[str], records: list[Record]) -> Matrix:
    m = Matrix(sorted(nodes))
    for r in records:
        m.add(r)
    return m


# ---------------------------------------------------------------- SVG

CELL_W, CELL_H, HEAD_W, HEAD_H, GAP, TITLE_H = 124, 34, 150, 46, 36, 26
FONT = "font-family='DejaVu Sans, Arial, sans-serif'"


def _panel_size(m: Matrix, check: str) -> tuple[int, int]:
    return (HEAD_W + CELL_W * len(m.destinations(check)), TITLE_H + HEAD_H + CELL_H * len(m.sources(check)))


def _fit(text: str, width: int, px: float = 6.6) -> str:
    room = int(width / px)
    return text if len(text) <= room else text[: room - 1] + "…"


def render_svg(m: Matrix, title: str = "netconform: node x node") -> str:
    checks = m.checks()
    per_row = 2 if len(checks) > 1 else 1
    sizes = [_panel_size(m, c) for c in checks]
    col_w = [0] * per_row
    for i, (w, _) in enumerate(sizes):
        col_w[i % per_row] = max(col_w[i % per_row], w)
    rows = [checks[i : i + per_row] for i in range(0, len(checks), per_row)]
    row_h = [max(_panel_size(m, c)[1] for c in row) for row in rows]
    top = 58
    width = max(sum(col_w) + GAP * (per_row + 1), 560)
    height = top + sum(row_h) + GAP * (len(rows) + 1) + 20
    verdict = "every path passed" if m.all_passed else "some paths FAILED"
    out = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' viewBox='0 0 {width} {height}' {FONT}>",
        f"<rect width='{width}' height='{height}' fill='#ffffff'/>",
        f"<text x='{GAP}' y='30' font-size='18' font-weight='bold'>{escape(title)}</text>",
        f"<text x='{GAP}' y='48' font-size='12' fill='#555'>rows: source, columns: destination — {verdict}</text>",
    ]
    y = top + GAP
    for r, row in enumerate(rows):
        x = GAP
        for i, check in enumerate(row):
            out += _panel(m, check, x, y)
            x += col_w[i] + GAP
        y += row_h[r] + GAP
    out += _legend(GAP, height - 14)
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _panel(m: Matrix, check: str, x0: int, y0: int) -> list[str]:
    name = PATHS.get(check, (check, ""))[0]
    srcs, dsts = m.sources(check), m.destinations(check)
    out = [
        f"<g class='panel' data-check='{escape(check)}'>",
        f"<text x='{x0}' y='{y0 + 16}' font-size='14' font-weight='bold'>{escape(name)}</text>",
    ]
    hy = y0 + TITLE_H
    for j, d in enumerate(dsts):
        cx = x0 + HEAD_W + j * CELL_W + CELL_W / 2
        out.append(
            f"<text x='{cx}' y='{hy + HEAD_H - 10}' font-size='11' text-anchor='middle'>{escape(_fit(d, CELL_W))}</text>"
        )
    out.append(
        f"<text x='{x0 + HEAD_W - 8}' y='{hy + 14}' font-size='10' fill='#777' text-anchor='end'>from \u2193 to \u2192</text>"
    )
    # one grey background for the empty cells, then only the cells that exist (at 1000 nodes a sample
    # fills a few thousand of a million)
    out.append(
        f"<rect x='{x0 + HEAD_W}' y='{hy + HEAD_H}' width='{CELL_W * len(dsts)}' height='{CELL_H * len(srcs)}' "
        "fill='#f4f4f4' stroke='#ddd'/>"
    )
    for i, s in enumerate(srcs):
        cy = hy + HEAD_H + i * CELL_H
        out.append(
            f"<text x='{x0 + HEAD_W - 8}' y='{cy + CELL_H / 2 + 4}' font-size='11' text-anchor='end'>{escape(_fit(s, HEAD_W - 10))}</text>"
        )
    row = {s: i for i, s in enumerate(srcs)}
    col = {d: j for j, d in enumerate(dsts)}
    for (s, d), cell in sorted(m.cells[check].items(), key=lambda kv: (row[kv[0][0]], col[kv[0][1]])):
        cx, cy = x0 + HEAD_W + col[d] * CELL_W, hy + HEAD_H + row[s] * CELL_H
        colour = COLOURS[cell.outcome]
        out.append(
            f"<g class='cell' data-src='{escape(s)}' data-dst='{escape(d)}' data-outcome='{cell.outcome}'>"
            f"<title>{escape(f'{name}: {s} -> {d}')}\n{escape(cell.tooltip)}</title>"
            f"<rect x='{cx + 1}' y='{cy + 1}' width='{CELL_W - 2}' height='{CELL_H - 2}' rx='3' fill='{colour}'/>"
        )
        if cell.label:
            out.append(
                f"<text x='{cx + CELL_W / 2}' y='{cy + CELL_H / 2 + 4}' font-size='10.5' fill='#ffffff' "
                f"text-anchor='middle'>{escape(_fit(cell.label, CELL_W - 6, 6.0))}</text>"
            )
        out.append("</g>")
    out.append("</g>")
    return out


def _legend(x: int, y: int) -> list[str]:
    out = []
    for word, key in (
        ("passed", "passed"),
        ("failed (cause)", "failed"),
        ("probe not run", "broken"),
        ("skipped", "skipped"),
    ):
        out.append(f"<rect x='{x}' y='{y - 10}' width='12' height='12' fill='{COLOURS[key]}'/>")
        out.append(f"<text x='{x + 16}' y='{y}' font-size='11'>{word}</text>")
        x += 24 + 7 * len(word)
    return out

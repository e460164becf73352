"""The node x node picture of a run: one panel per network path, one cell per source/destination.

Green = every check of that pair and path passed, red = one failed (the cell names the diagnosed
cause, else the error kind), amber = the probe could not be run (no network verdict), grey = only
skipped. The failing nodes come first; names are shown by the part that tells them apart (the full
name is in each tooltip). Past FULL_UP_TO nodes a grid is no longer readable: each panel is then a
summary, one line per node (failing first) with its failed paths from and to it and their cause.
Plain SVG text: no dependency, opens in every browser and in the Allure report.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from html import escape
from typing import Any

from .labels import OUTSIDE, PATHS, cause_id
from .names import common_affixes, short_names

# precedence when several checks share a cell: the worst wins
RANK = {"failed": 3, "broken": 2, "passed": 1, "skipped": 0}
COLOURS = {"failed": "#d64545", "broken": "#e0a030", "passed": "#3aa757", "skipped": "#c8c8c8"}
SERVICE_COLUMNS = {"dns": "DNS"}  # a check without a destination node: the Service it dials
DEFAULT_SERVICE_COLUMN = "ClusterIP"
FULL_UP_TO = 16  # nodes: a grid up to here (~2,100 px a panel); past it, the summary
SUMMARY_ROWS = 25  # nodes listed in a summary panel (failing first); the rest are counted in one line


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
    """cells[check][(src, dst)]; `nodes` in name order; sources and destinations failing first, `outside` last."""

    nodes: list[str]
    cells: dict[str, dict[tuple[str, str], Cell]] = field(default_factory=dict)

    def add(self, r: Record) -> None:
        self.cells.setdefault(r.check, {}).setdefault((r.src, r.dst), Cell()).add(r)

    def trouble(self) -> Counter[str]:
        """node -> how many failed or broken cells it is in, as source or destination, over every panel."""
        bad: Counter[str] = Counter()
        for panel in self.cells.values():
            for (src, dst), cell in panel.items():
                if cell.outcome in ("failed", "broken"):
                    bad.update({src, dst})
        return bad

    def ranked(self) -> list[str]:
        """The nodes, failing first (most failed or broken cells), then by name."""
        bad = self.trouble()
        return sorted(self.nodes, key=lambda n: (-bad[n], n))

    def sources(self, check: str) -> list[str]:
        seen = {s for s, _ in self.cells.get(check, {})}
        return [n for n in self.ranked() if n in seen] + sorted(seen - set(self.nodes), key=lambda s: (s == OUTSIDE, s))

    def destinations(self, check: str) -> list[str]:
        seen = {d for _, d in self.cells.get(check, {})}
        return [n for n in self.ranked() if n in seen] + sorted(seen - set(self.nodes))

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
ROW_H, NAME_W, COUNT_W, CAUSE_W = 22, 230, 120, 200  # the summary's lines and columns
FONT = "font-family='DejaVu Sans, Arial, sans-serif'"
PX = 6.6  # average width of a character at font-size 11


@dataclass
class _Panel:
    """One check's drawing at (0, 0), moved into place by render_svg."""

    check: str
    width: int
    height: int
    body: list[str]


def _fit(text: str, width: int, px: float = PX) -> str:
    room = int(width / px)
    return text if len(text) <= room else text[: room - 1] + "…"


def render_svg(m: Matrix, title: str = "netconform: node x node", full_up_to: int = FULL_UP_TO) -> str:
    summary = len(m.nodes) > full_up_to
    room = int((NAME_W - 26 if summary else min(CELL_W, HEAD_W - 10)) / PX)
    names = short_names(m.nodes, room)
    panels = [(_summary(m, c, names) if summary else _grid(m, c, names)) for c in m.checks()]
    per_row = 2 if len(panels) > 1 else 1
    col_w = [max((p.width for p in panels[i::per_row]), default=0) for i in range(per_row)]
    rows = [panels[i : i + per_row] for i in range(0, len(panels), per_row)]
    row_h = [max(p.height for p in row) for row in rows]
    top = 74
    width = max(sum(col_w) + GAP * (per_row + 1), 560)
    height = top + sum(row_h) + GAP * (len(rows) + 1) + 20
    verdict = "every path passed" if m.all_passed else "some paths FAILED"
    what = (
        f"{len(m.nodes)} nodes: one line per node, failing nodes first"
        if summary
        else "rows: source, columns: destination, failing nodes first"
    )
    prefix, suffix = common_affixes(m.nodes)
    shared = " and ".join(f"'{a}'" for a in (prefix, suffix) if a)
    out = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' viewBox='0 0 {width} {height}' {FONT}>",
        f"<rect width='{width}' height='{height}' fill='#ffffff'/>",
        f"<text x='{GAP}' y='30' font-size='18' font-weight='bold'>{escape(title)}</text>",
        f"<text x='{GAP}' y='48' font-size='12' fill='#555'>{escape(what)} — {verdict}</text>",
    ]
    if shared:
        out.append(
            f"<text x='{GAP}' y='64' font-size='12' fill='#555'>{escape(f'node names without the {shared} all of them share')}</text>"
        )
    y = top + GAP
    for r, row in enumerate(rows):
        x = GAP
        for i, panel in enumerate(row):
            out.append(f"<g class='panel' data-check='{escape(panel.check)}' transform='translate({x} {y})'>")
            out += panel.body
            out.append("</g>")
            x += col_w[i] + GAP
        y += row_h[r] + GAP
    out += _legend(GAP, height - 14)
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _title(check: str) -> tuple[str, str]:
    name = PATHS.get(check, (check, ""))[0]
    return name, f"<text x='0' y='16' font-size='14' font-weight='bold'>{escape(name)}</text>"


def _grid(m: Matrix, check: str, names: dict[str, str]) -> _Panel:
    name, heading = _title(check)
    srcs, dsts = m.sources(check), m.destinations(check)
    out = [heading]
    hy = TITLE_H
    for j, d in enumerate(dsts):
        cx = HEAD_W + j * CELL_W + CELL_W / 2
        out.append(
            f"<text x='{cx}' y='{hy + HEAD_H - 10}' font-size='11' text-anchor='middle'><title>{escape(d)}</title>"
            f"{escape(names.get(d, _fit(d, CELL_W)))}</text>"
        )
    out.append(
        f"<text x='{HEAD_W - 8}' y='{hy + 14}' font-size='10' fill='#777' text-anchor='end'>from \u2193 to \u2192</text>"
    )
    # one grey background for the empty cells, then only the cells that exist (a sample fills few of them)
    out.append(
        f"<rect x='{HEAD_W}' y='{hy + HEAD_H}' width='{CELL_W * len(dsts)}' height='{CELL_H * len(srcs)}' "
        "fill='#f4f4f4' stroke='#ddd'/>"
    )
    for i, s in enumerate(srcs):
        cy = hy + HEAD_H + i * CELL_H
        out.append(
            f"<text x='{HEAD_W - 8}' y='{cy + CELL_H / 2 + 4}' font-size='11' text-anchor='end'><title>{escape(s)}</title>"
            f"{escape(names.get(s, _fit(s, HEAD_W - 10)))}</text>"
        )
    row = {s: i for i, s in enumerate(srcs)}
    col = {d: j for j, d in enumerate(dsts)}
    for (s, d), cell in sorted(m.cells[check].items(), key=lambda kv: (row[kv[0][0]], col[kv[0][1]])):
        cx, cy = HEAD_W + col[d] * CELL_W, hy + HEAD_H + row[s] * CELL_H
        out.append(
            f"<g class='cell' data-src='{escape(s)}' data-dst='{escape(d)}' data-outcome='{cell.outcome}'>"
            f"<title>{escape(f'{name}: {s} -> {d}')}\n{escape(cell.tooltip)}</title>"
            f"<rect x='{cx + 1}' y='{cy + 1}' width='{CELL_W - 2}' height='{CELL_H - 2}' rx='3' fill='{COLOURS[cell.outcome]}'/>"
        )
        if cell.label:
            out.append(
                f"<text x='{cx + CELL_W / 2}' y='{cy + CELL_H / 2 + 4}' font-size='10.5' fill='#ffffff' "
                f"text-anchor='middle'>{escape(_fit(cell.label, CELL_W - 6, 6.0))}</text>"
            )
        out.append("</g>")
    return _Panel(check, HEAD_W + CELL_W * len(dsts), TITLE_H + HEAD_H + CELL_H * len(srcs), out)


@dataclass
class _Line:
    """One node of a summary panel: its cells as source (`out`) and as destination (`into`)."""

    node: str
    out: list[Cell] = field(default_factory=list)
    into: list[Cell] = field(default_factory=list)

    @property
    def outcome(self) -> str:
        return max((c.outcome for c in self.out + self.into), key=RANK.__getitem__, default="skipped")

    @property
    def bad(self) -> int:
        return sum(c.outcome in ("failed", "broken") for c in self.out + self.into)

    @property
    def cause(self) -> str:
        labels = Counter(c.label for c in self.out + self.into if c.outcome in ("failed", "broken"))
        return labels.most_common(1)[0][0] if labels else ""


def _counts(cells: list[Cell]) -> str:
    if not cells:
        return "—"
    n = Counter(c.outcome for c in cells)
    parts = ([f"{n['failed']} failed"] if n["failed"] else []) + ([f"{n['broken']} not run"] if n["broken"] else [])
    if parts:
        return ", ".join(parts) + f" of {len(cells)}"
    return f"{n['passed']} passed" if n["passed"] else "skipped"


def _summary(m: Matrix, check: str, names: dict[str, str]) -> _Panel:
    """One line per node, failing first: the paths from it and to it that failed, and the cause."""
    name, heading = _title(check)
    lines: dict[str, _Line] = {}
    for (s, d), cell in m.cells[check].items():
        lines.setdefault(s, _Line(s)).out.append(cell)
        if d in m.nodes:
            lines.setdefault(d, _Line(d)).into.append(cell)
    order = {n: i for i, n in enumerate(m.ranked())}
    ranked = sorted(lines.values(), key=lambda ln: (-ln.bad, order.get(ln.node, len(order)), ln.node))
    # a panel with nothing failing is one line: 25 green lines would only hide the panels that matter
    cut = SUMMARY_ROWS if any(ln.bad for ln in ranked) else 0
    shown, rest = ranked[:cut], ranked[cut:]
    x_out, x_into, x_cause = NAME_W, NAME_W + COUNT_W, NAME_W + 2 * COUNT_W
    hy = TITLE_H + 16
    out = [heading]
    for x, word in ((22, "node"), (x_out, "from it"), (x_into, "to it"), (x_cause, "cause")):
        out.append(f"<text x='{x}' y='{hy}' font-size='11' fill='#777'>{word}</text>")
    for i, ln in enumerate(shown):
        y = hy + 8 + i * ROW_H
        label = names.get(ln.node, _fit(ln.node, NAME_W - 26))
        out.append(
            f"<g class='node' data-node='{escape(ln.node)}' data-outcome='{ln.outcome}'>"
            f"<title>{escape(f'{name}: {ln.node}')}</title>"
            f"<rect x='0' y='{y + 4}' width='14' height='14' rx='2' fill='{COLOURS[ln.outcome]}'/>"
            f"<text x='22' y='{y + 16}' font-size='11'>{escape(label)}</text>"
            f"<text x='{x_out}' y='{y + 16}' font-size='11'>{_counts(ln.out)}</text>"
            f"<text x='{x_into}' y='{y + 16}' font-size='11'>{_counts(ln.into)}</text>"
            f"<text x='{x_cause}' y='{y + 16}' font-size='11'>{escape(_fit(ln.cause, CAUSE_W))}</text></g>"
        )
    height = hy + 8 + len(shown) * ROW_H
    if rest:
        bad = sum(ln.bad > 0 for ln in rest)
        if not shown:
            every = "passed" if any(ln.outcome == "passed" for ln in rest) else "skipped"
            more = f"{len(rest)} nodes: every path {every}"
        else:
            more = f"… {len(rest)} more nodes" + (f", {bad} of them failing" if bad else ", none failing")
        out.append(f"<text x='22' y='{height + 16}' font-size='11' fill='#555'>{escape(more)}</text>")
        height += ROW_H
    return _Panel(check, NAME_W + 2 * COUNT_W + CAUSE_W, height, out)


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

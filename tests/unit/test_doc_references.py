"""Every document the repo cites is in the repo: markdown links, `*.md` names, `docs/faults.md #N` entries.

A clone has only the tracked files, so a citation of a file outside them (a design note, the old
untracked catalog) or of a fault number docs/faults.md does not define is a broken reference.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

REPO = Path(__file__).resolve().parents[2]
CATALOG = "docs/faults.md"

URL = re.compile(r"\b[a-z][a-z0-9+.-]*://\S+")
MD_LINK = re.compile(r"\[[^\]\n]*\]\(([^)\s]+)\)")
MD_NAME = re.compile(r"(?<![\w.*/-])((?:\.{1,2}/|/)?(?:[\w.-]+/)*[\w-][\w.-]*\.md)\b")
# a numbered entry of a fault catalog: "<dir>/faults.md #N", any case, with or without ".md"
NUMBERED = re.compile(r"((?:[\w./-]*/)?faults(?:\.md)?) #(\d+)", re.IGNORECASE)
ANCHOR = re.compile(r'<a id="([\w-]+)"></a>')
# files a tracked file writes itself, named where they are made (the release workflow's notes)
WRITTEN_BY = {".github/workflows/release.yml": {"notes.md"}}


@dataclass(frozen=True)
class Broken:
    path: str
    line: int
    reference: str
    why: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.reference!r}: {self.why}"


def tracked_files() -> list[str]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, check=True, capture_output=True).stdout
    return [p for p in out.decode().split("\0") if p and (REPO / p).is_file()]


def anchors(text: str) -> set[str]:
    return set(ANCHOR.findall(text))


def _resolve(target: str, citing: str, files: set[str]) -> str | None:
    """The tracked file a reference names (relative to the citing file, else to the repo root), or None."""
    if target.startswith("/"):
        return None  # an absolute path is outside any clone
    here = PurePosixPath(citing).parent
    for base in (here, PurePosixPath()):
        parts: list[str] = []
        for part in (base / target).parts:
            if part == "..":
                if not parts:
                    break
                parts.pop()
            elif part != ".":
                parts.append(part)
        else:
            candidate = "/".join(parts)
            if candidate in files or any(f.startswith(candidate + "/") for f in files):
                return candidate
    return None


def broken_references(path: str, text: str, files: set[str], catalog_anchors: set[str]) -> list[Broken]:
    """The references in one file's text that name no tracked file or no entry of the fault catalog."""
    out: list[Broken] = []
    for number, line in enumerate(text.splitlines(), 1):
        line = URL.sub("", line)
        targets = {m.group(1) for m in MD_LINK.finditer(line)} if path.endswith(".md") else set()
        targets |= {m.group(1) for m in MD_NAME.finditer(line)}
        for target in sorted(targets - WRITTEN_BY.get(path, set())):
            file, _, anchor = target.partition("#")
            if not file:  # an anchor in the same file
                continue
            resolved = _resolve(file, path, files)
            if resolved is None:
                out.append(Broken(path, number, target, "no such file in the repo"))
            elif resolved == CATALOG and anchor and anchor not in catalog_anchors:
                out.append(Broken(path, number, target, f"{CATALOG} has no anchor {anchor!r}"))
        for m in NUMBERED.finditer(line):
            cited, entry = m.group(1), m.group(2)
            if _resolve(cited if cited.lower().endswith(".md") else cited + ".md", path, files) != CATALOG:
                out.append(Broken(path, number, m.group(0), f"the fault catalog is {CATALOG}"))
            elif f"fault-{entry}" not in catalog_anchors:
                out.append(Broken(path, number, m.group(0), f"{CATALOG} has no entry #{entry}"))
    return out


def _text(path: str) -> str | None:
    try:
        return (REPO / path).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return None  # binary


def test_every_cited_document_is_in_the_repo() -> None:
    files = tracked_files()
    catalog = anchors((REPO / CATALOG).read_text(encoding="utf-8"))
    broken: list[Broken] = []
    this = str(Path(__file__).resolve().relative_to(REPO))  # its examples are broken on purpose
    for path in files:
        text = _text(path) if path != this else None
        if text is not None:
            broken += broken_references(path, text, set(files), catalog)
    assert not broken, "references to documents the repo does not have:\n" + "\n".join(map(str, broken))


def test_the_scanner_finds_each_kind_of_broken_reference() -> None:
    files = {"README.md", CATALOG, "docs/x.md"}
    catalog = {"fault-1"}
    old = "FAULTS" + ".md"
    text = "\n".join(
        [
            f"see {old} #1",  # the old, untracked catalog
            "see FAULTS #1",
            f"see {CATALOG} #2",  # no such entry
            "[design](../notes/ARCHITECTURE.md)",
            "/work/shared/design/LAB.md",
            f"fine: {CATALOG} #1, [readme](../README.md), README.md, https://example.org/x/NOPE.md",
            f"[entry]({CATALOG}#fault-9)",
        ]
    )
    found = broken_references("docs/x.md", text, files, catalog)
    assert [b.line for b in found] == [1, 1, 2, 3, 4, 5, 7]

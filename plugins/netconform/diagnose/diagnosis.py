"""`Diagnosis`: what the diagnosis of one failed test found, and its one way onto a pytest report and back.

On the report it is plain data (an attribute holding a dict, a section with the rendered text and the
`netconform_cause` and `netconform_findings` user properties for JUnit readers, JSON), so it survives
xdist's report serialization.
"""

from __future__ import annotations

import base64
import json
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["CAUSE_PROPERTY", "FINDINGS_PROPERTY", "SECTION", "Diagnosis"]

SECTION = "netconform diagnosis"  # the report section (terminal output, JUnit, Allure attachment)
CAUSE_PROPERTY = "netconform_cause"  # user property: JSON list of the top causes, "cause@node"
FINDINGS_PROPERTY = "netconform_findings"  # user property: JSON list of the top findings' cause, node, title, fix
_ATTRIBUTE = "netconform_diagnosis"


@dataclass
class Diagnosis:
    """The diagnosis of one failed test.

    findings: `Finding.as_dict()` of the findings explaining the test, most convincing first;
    gaps: why some of the evidence could not be read; text: the rendered section; seconds: time
    spent gathering evidence and running rules; pcaps: capture name -> pcap (base64);
    evidence: node -> what was read there (the nodes on the test's paths and its findings);
    error: set when the diagnosis itself failed (then no finding explains anything).
    """

    text: str
    findings: list[dict[str, Any]] = field(default_factory=list)
    gaps: list[str] = field(default_factory=list)
    seconds: float = 0.0
    pcaps: dict[str, str] = field(default_factory=dict)
    evidence: dict[str, str] = field(default_factory=dict)
    error: str | None = None

    @classmethod
    def failed(cls, error: str, seconds: float = 0.0) -> Diagnosis:
        """The diagnosis could not be made: said in its section, never turning the failure into an error."""
        return cls(text=f"diagnosis failed: {error}\n", seconds=seconds, error=error)

    @property
    def causes(self) -> list[str]:
        """The top three causes, best first: `["stale-flannel-arp@lab-node-2", ...]`."""
        return [f"{f['cause']}@{f['node']}" if f.get("node") else str(f["cause"]) for f in self.findings[:3]]

    def add_pcap(self, name: str, data: bytes) -> None:
        self.pcaps[name] = base64.b64encode(data).decode()

    def pcap_bytes(self) -> dict[str, bytes]:
        return {name: base64.b64decode(b64) for name, b64 in self.pcaps.items()}

    def properties(self) -> list[tuple[str, str]]:
        """The JUnit properties: the top causes and, for each, its node, title and fix (JSON; none if no finding)."""
        if not self.findings:
            return []
        top = [{key: f.get(key) for key in ("cause", "node", "title", "fix")} for f in self.findings[:3]]
        return [(CAUSE_PROPERTY, json.dumps(self.causes)), (FINDINGS_PROPERTY, json.dumps(top))]

    def attach(self, report: Any, item: Any = None) -> None:
        """Put this diagnosis on a pytest report (the only writer), and its properties on the item too:
        pytest's junitxml writes the teardown report's properties, which pytest copies from the item."""
        report.sections.append((SECTION, self.text))
        setattr(report, _ATTRIBUTE, asdict(self))
        report.user_properties.extend(self.properties())
        if item is not None:
            item.user_properties.extend(self.properties())

    @classmethod
    def of(cls, report: Any) -> Diagnosis | None:
        """The diagnosis a report carries (also after xdist serialization), or None (the only reader)."""
        data = getattr(report, _ATTRIBUTE, None)
        return cls(**data) if isinstance(data, dict) else None

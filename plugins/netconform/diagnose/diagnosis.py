"""`Diagnosis`: what the diagnosis of one failed test found, and its one way onto a pytest report and back.

On the report it is plain data (an attribute holding a dict, a section with the rendered text and the
`netconform_cause` user property for JUnit readers), so it survives xdist's report serialization.
"""

from __future__ import annotations

import base64
import json
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["CAUSE_PROPERTY", "SECTION", "Diagnosis"]

SECTION = "netconform diagnosis"  # the report section (terminal output, JUnit, Allure attachment)
CAUSE_PROPERTY = "netconform_cause"  # user property: JSON list of the top causes, "cause@node"
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

    def attach(self, report: Any) -> None:
        """Put this diagnosis on a pytest report (the only writer)."""
        report.sections.append((SECTION, self.text))
        setattr(report, _ATTRIBUTE, asdict(self))
        if self.findings:
            report.user_properties.append((CAUSE_PROPERTY, json.dumps(self.causes)))

    @classmethod
    def of(cls, report: Any) -> Diagnosis | None:
        """The diagnosis a report carries (also after xdist serialization), or None (the only reader)."""
        data = getattr(report, _ATTRIBUTE, None)
        return cls(**data) if isinstance(data, dict) else None

"""Root-cause diagnosis: node evidence -> rules (one module per cause) -> findings -> correlation with
the failed paths; packet capture analysed with scapy; the public `Diagnosis` of one failed test.

Options and hooks live in `netconform.plugin.diagnose`; reports read a test's diagnosis with
`Diagnosis.of(report)` and nothing else of this package's state.
"""

from .diagnoser import Diagnoser, render
from .diagnosis import CAUSE_PROPERTY, FINDINGS_PROPERTY, SECTION, Diagnosis
from .model import Finding
from .rules import categories as cause_categories

__all__ = [
    "CAUSE_PROPERTY",
    "FINDINGS_PROPERTY",
    "SECTION",
    "Diagnoser",
    "Diagnosis",
    "Finding",
    "cause_categories",
    "render",
]

"""netconform reporting as pure functions: Allure labels and parameters of a check, environment.properties,
the node x node matrix. The pytest side (options, hooks, attachments) is `netconform.plugin.reporting` (per run)
and `netconform.plugin.reporting_per_test`.
"""

from .environment import properties, render_properties
from .labels import Labels, labels_for, path_properties, root_cause_line
from .matrix import Record, build, records_from_report, render_svg
from .outcomes import RunVerdicts, write_outcomes

__all__ = [
    "Labels",
    "Record",
    "RunVerdicts",
    "build",
    "labels_for",
    "path_properties",
    "properties",
    "records_from_report",
    "render_properties",
    "render_svg",
    "root_cause_line",
    "write_outcomes",
]

"""netconform reporting: Allure labels/steps/attachments, environment, categories, node x node matrix.

Loaded by the root conftest.py as the pytest plugin `plugins.reporting`; the hooks live in plugin.py.
"""

from .plugin import (  # noqa: F401  (pytest finds hooks by name in this module)
    pytest_addoption,
    pytest_collection_modifyitems,
    pytest_configure,
    pytest_configure_node,
    pytest_runtest_makereport,
    pytest_runtest_setup,
    pytest_sessionfinish,
    pytest_terminal_summary,
)

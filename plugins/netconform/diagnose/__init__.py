"""Root-cause diagnosis: node evidence -> rules -> findings -> correlation with failed paths.

Loaded by the root conftest as `plugins.diagnose`; the hooks live in plugins.diagnose.plugin.
"""

pytest_plugins = ["netconform.diagnose.plugin"]

"""Nothing lives here: the netconform pytest plugin loads through its `pytest11` entry point
(`netconform = netconform.plugin` in pyproject.toml), installed by ci/bootstrap."""

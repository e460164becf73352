"""The checks an operator reads, one module per network path (shipped in the package as netconform.suites)."""

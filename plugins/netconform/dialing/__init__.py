"""Dialing from inside the cluster: what each client pod dials (plan), the probe's wire format, the
fan-out over the one pod exec, dials from the pytest machine, the result model and its wording, and
the `netconform_path` property that tells diagnosis and reports which path a test checked."""

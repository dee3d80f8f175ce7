"""The Python API behind ``genlab.train`` / ``genlab.evaluate`` and the CLI: training a run, and using one."""

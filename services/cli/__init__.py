"""The `herald` command: serve the three services, print tokens."""

"""The web UI (twistd ccl-ui). Start reading at access.py: how routes, roles and pages fit together."""

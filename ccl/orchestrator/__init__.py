"""The orchestrator: starts, watches and controls every service as a child process.

- ``settings``: the ``[orchestrator]`` keys, read once.
- ``services``: the table of services (data) and how each becomes a child.
- ``monitor``: the process monitor (``spawnProcess``, public Twisted API only): states, restarts, stops.
- ``child``: one child's runtime state, status view and output splitting.
- ``backoff``: the restart policy (pure).
- ``logfiles``: rotated per-child log files and tails across the rotation boundary.
- ``health``: HTTP and TCP checks, /metrics scrapes.
- ``alerts``: alert rules and the ``alerts`` table.
- ``figures``: ``GET /metrics`` (psutil, disks, the children's own samples).
- ``auth``: the control token and the actor of an action.
- ``exec_child``: ties a child's life to the orchestrator's (parent-death signal).
- ``api``: the control API (Klein) on ``[orchestrator] listen``.
- ``app``: wiring, used by ``ccl.tac`` and the ``ccl-orchestrator`` twistd plugin.
"""

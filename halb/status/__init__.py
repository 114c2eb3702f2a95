"""`halb status`: who holds each VIP, is anything held back, and do the nodes run what halb rendered?

- `verdict`: pure. Each node's reported state (`NodeState`, parsed from the probe's output) and the
  pair's verdict with its exit code. Shared by `halb status`, the lab and the deploy's verify step.
- `remote`: asks the nodes over SSH (the probe script, `ssh_run`, `collect`).
- `report`: the text and JSON an operator reads.
"""

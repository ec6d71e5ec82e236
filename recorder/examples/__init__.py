"""Example agents to record with `--agent` (and to copy when writing your own)."""

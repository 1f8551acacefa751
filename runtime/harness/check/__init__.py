"""A Jepsen-style history checker: parse JSON-lines histories of client operations
(`history`), search them for a linearization against a per-key register model
(`linearizability`), and check append workloads without search (`appendlog`).
Run `python -m runtime.harness.check HISTORY.jsonl` to check a recorded history."""

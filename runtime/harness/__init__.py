"""The harness: everything that tests, attacks or measures the product, and is not the product.

The deterministic simulator (`sim/`: seeded simulation, scenario scripts, model checking), the
history checkers (`check/`), the Jepsen-style runs on real processes (`nemesis`), their link
faults and power losses (`faults`), the planted bugs (`bugs`), the test-mode actor that carries
those hooks (`actor`), local throw-away clusters and workloads (`local`, `workload`) and the
benchmark (`bench`, `bench_peer`).

The product (`actors/` and the rest of `runtime/`) never imports from here; a test checks it
(tests/test_layering.py). What the harness needs from a process, it passes in: the test-mode
actor builds the product's shell with its own hooks, and the supervisor starts that module
instead of `runtime.actor` when the config says `[testing] enabled = true`.
"""

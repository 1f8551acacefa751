"""The pure protocol core: ballots, messages, durable records, and the acceptor, proposer,
learner and key-value state machines.

Standard library only. No sockets, clocks, disk, logging, asyncio, msgpack or global random:
every input is a message or a tick, every effect is returned in an `Output`. The same cores
run inside real processes (`runtime/`) and inside the deterministic simulator.
"""

"""Deterministic, single-threaded runs of the real `actors/` cores on virtual time."""

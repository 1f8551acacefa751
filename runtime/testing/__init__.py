"""Helpers that tests, benchmarks and demos share: local clusters on free loopback ports."""

"""actors/ stays pure: standard library only, no I/O, no clocks, no global randomness."""

import ast
from pathlib import Path

ACTORS = Path(__file__).resolve().parent.parent / "actors"
FORBIDDEN = {"time", "socket", "asyncio", "zmq", "msgpack", "structlog", "uvloop", "os", "threading",
             "runtime", "logging", "subprocess", "datetime", "select", "signal"}


def test_actors_import_nothing_impure() -> None:
    found = []
    for path in sorted(ACTORS.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                if name.split(".")[0] in FORBIDDEN:
                    found.append(f"{path.name}: {name}")
    assert not found, found


def test_actors_use_no_global_random() -> None:
    # `random.Random` instances are injected; module-level random.random() etc. would make runs
    # irreproducible.
    for path in sorted(ACTORS.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "random":
                assert node.attr == "Random", f"{path.name} uses random.{node.attr}"

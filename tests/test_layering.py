"""The product apart from its harness: nothing in `actors/` or `runtime/` outside
`runtime/harness/` imports the harness, at module level or inside a function. What the harness
needs from a process is passed in (runtime/harness/actor.py), never reached for."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HARNESS = ROOT / "runtime" / "harness"
# Every package of the runtime too (runtime/web/, runtime/tracechart/), not only its top level.
PRODUCT = sorted(p for p in [*ROOT.glob("actors/*.py"), *ROOT.glob("runtime/**/*.py")] if HARNESS not in p.parents)


def harness_imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.startswith("runtime.harness")]
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module.startswith("runtime.harness"):
                found.append(node.module)
            elif node.module == "runtime":
                found += [f"runtime.{a.name}" for a in node.names if a.name == "harness"]
    return found


def test_the_product_never_imports_the_harness() -> None:
    assert len(PRODUCT) > 20  # it really looked
    found = {p.relative_to(ROOT).as_posix(): harness_imports(p) for p in PRODUCT}
    assert {k: v for k, v in found.items() if v} == {}


def test_the_check_sees_an_import_of_the_harness(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from runtime.harness.faults import FaultyLinks\n    from runtime import harness\n")
    assert harness_imports(bad) == ["runtime.harness.faults", "runtime.harness"]

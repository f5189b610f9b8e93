"""The package's shape, read from its source: the import rules that keep its layers pointing down, each judge
named only in its own module, and docs/layout.md's module map matching the tree."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "imagereward"
LIBRARY = ("imagereward.judges", "imagereward.images", "imagereward.model")
FRONT_ENDS = ("imagereward.app", "imagereward.bulk", "imagereward.cli", "imagereward.refl")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(path: Path) -> set[str]:
    """Every module a file imports, at any depth of it (top-level or inside functions), made absolute."""
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            found.add(source)
            found.update(f"{source}.{alias.name}" for alias in node.names if f"{source}.{alias.name}" in MODULES)
    return found


def within(module: str, packages: tuple[str, ...] | str) -> bool:
    packages = (packages,) if isinstance(packages, str) else packages
    return any(module == p or module.startswith(p + ".") for p in packages)


def importers_of(target: str) -> set[str]:
    """The project's files (package modules and app.py) that import `target` or a module inside it."""
    files = {**MODULES, "app": ROOT / "app.py"}
    return {name for name, path in files.items() if any(within(i, target) for i in imports(path))}


def test_only_the_page_imports_gradio() -> None:
    found = importers_of("gradio")
    assert "app" in found and all(m == "app" or within(m, "imagereward.app") for m in found), found


def test_only_bulk_scoring_imports_ray() -> None:
    assert importers_of("ray") and all(within(m, "imagereward.bulk") for m in importers_of("ray"))


@pytest.mark.parametrize("package", ["diffusers", "accelerate", "peft"])
def test_only_training_imports_the_training_libraries(package: str) -> None:
    """diffusers, accelerate and peft are the `train` extra's: the app, bulk and the library never need them (only
    ReFL and the reward model's training use them)."""
    found = importers_of(package)
    assert all(within(m, "imagereward.refl") or within(m, "imagereward.training") for m in found), found


def test_nothing_outside_the_page_imports_it() -> None:
    assert all(within(m, "imagereward.app") or m == "app" for m in importers_of("imagereward.app"))


@pytest.mark.parametrize("layer", LIBRARY)
def test_the_library_imports_no_front_end(layer: str) -> None:
    for name, path in MODULES.items():
        if within(name, layer):
            bad = [i for i in imports(path) if within(i, FRONT_ENDS)]
            assert not bad, f"{name} imports {bad}"


@pytest.mark.parametrize(
    "layer, below",
    [
        ("imagereward.images", ("imagereward.images", "imagereward.errors")),
        ("imagereward.model", ("imagereward.model", "imagereward.errors")),
        ("imagereward.errors", ()),
    ],
)
def test_arrows_point_down(layer: str, below: tuple[str, ...]) -> None:
    """The image pipeline and the network import nothing of the package but themselves and the errors."""
    for name, path in MODULES.items():
        if within(name, layer):
            ours = {i for i in imports(path) if within(i, "imagereward") and i != "imagereward"}
            bad = [i for i in ours if not within(i, below)]
            assert not bad, f"{name} imports {bad}"


def test_no_import_cycles() -> None:
    graph = {name: {i for i in imports(path) if i in MODULES and i != name} for name, path in MODULES.items()}
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                raise AssertionError(f"import cycle: {' -> '.join(trail + [node, nxt])}")
            if nxt not in state:
                visit(nxt, trail + [node])
        state[node] = 2

    for name in graph:
        if name not in state:
            visit(name, [])


# ------------------------------------------------------------------------------------------ judge names
def string_literals(path: Path) -> list[tuple[int, str]]:
    """The string constants of a file that are not docstrings nor the names of exported objects (`__all__`,
    the lazy table of `__init__`)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                skip.add(id(first.value))
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id in ("__all__", "_LAZY") for t in targets):
                skip.update(id(n) for n in ast.walk(node))
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip
    ]


def test_each_judge_is_named_only_in_its_own_module() -> None:
    from imagereward.judges import JUDGE_MODULES, specs

    own = {module: spec for module, spec in zip(JUDGE_MODULES, specs())}
    files = {**MODULES, "app": ROOT / "app.py"}
    for spec_module, spec in own.items():
        names = {spec.name, spec.label}
        for name, path in files.items():
            if name == spec_module:
                continue
            found = [(line, text) for line, text in string_literals(path) if text in names]
            assert not found, f"{name} names {spec.label} at lines {[line for line, _ in found]}"


def test_the_judge_records_are_complete() -> None:
    from imagereward.judges import JUDGE_MODULES, primary, specs

    assert len(specs()) == len(JUDGE_MODULES) == len({s.name for s in specs()}) == len({s.label for s in specs()})
    assert sum(s.primary for s in specs()) == 1 and primary().paper_accuracy == 65.14
    for spec in specs():
        assert spec.meaning and spec.files and spec.prompt_tokens >= 0 and callable(spec.load) and callable(spec.fetch)


# ------------------------------------------------------------------------------------------ module map
def test_the_module_map_matches_the_tree() -> None:
    """docs/layout.md's table lists every module of the package, and nothing that is not there."""
    layout = (ROOT / "docs" / "layout.md").read_text(encoding="utf-8")
    table = layout.split("# Layout", 1)[1]
    listed = set()
    for row in table.splitlines():
        if row.startswith("| `"):
            first, described = row.split(" | ", 2)[:2]
            cells = re.findall(r"`([^`]+)`", first)
            base = Path(cells[0]).parent
            for k, cell in enumerate(cells):
                path = ROOT / cell if k == 0 or not (ROOT / base / cell).exists() else ROOT / base / cell
                assert path.exists(), f"docs/layout.md lists {cell}, which is not in the tree"
                listed.add(path.resolve())
            if cells[0].endswith("/") and (ROOT / cells[0]).is_dir() and cells[0].startswith("imagereward/"):
                folder = ROOT / cells[0]
                mentioned = set(re.findall(r"`([\w]+\.py)`", described))
                modules = {p.name for p in folder.glob("*.py")}
                assert modules <= mentioned | {"__init__.py"} or modules == mentioned, (cells[0], modules - mentioned)
                assert mentioned <= modules, (cells[0], mentioned - modules)
    tree = {
        p.resolve() for p in PACKAGE.iterdir() if p.suffix == ".py" or (p.is_dir() and (p / "__init__.py").exists())
    }
    missing = {p.name for p in tree - listed if p.name not in ("__main__.py",)}
    assert not missing, f"docs/layout.md's module map lacks {sorted(missing)}"

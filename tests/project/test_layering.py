"""The package's layering, read from the source with `ast`: imports between top-level packages run one way
only (down the list below), no package imports a sibling of its own layer, and no module imports itself
back through others (no cycles), counting imports made inside functions too.

The layers (README "Layout" draws the same picture):

    cli -> apps -> {caffe, convert} -> training -> evaluation -> inference -> models
        -> {caffenet, data, prep} -> io -> {config, errors}
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from conftest import ROOT

PACKAGE = ROOT / "python" / "fcnkit"
LAYERS = [
    ("__main__", "__init__"),
    ("cli",),
    ("apps",),
    ("caffe", "convert"),
    ("training",),
    ("evaluation",),
    ("inference",),
    ("models",),
    ("caffenet", "data", "prep"),
    ("io",),
    ("config", "errors"),
]
RANK = {pkg: i for i, group in enumerate(LAYERS) for pkg in group}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(path: Path, known: set[str]) -> list[tuple[str, int]]:
    """(fcnkit module, line) for every import in the file, at module level or inside functions. `from P import
    N` counts as an import of P.N when that is a module, else of P."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names if a.name.split(".")[0] == "fcnkit"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                name = module_name(path)
                base = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                base = base[:len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod.split(".")[0] != "fcnkit":
                continue
            subs = [f"{mod}.{a.name}" for a in node.names if f"{mod}.{a.name}" in known]
            out += [(s, node.lineno) for s in subs] or [(mod, node.lineno)]
    return out


def package_of(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "__init__"
    return parts[1]


def graph() -> dict[str, list[tuple[str, int]]]:
    mods = modules()
    known = set(mods)
    return {m: [(t, line) for t, line in imports(p, known) if t in known and t != m] for m, p in mods.items()}


def test_every_top_level_package_has_a_layer():
    packages = {package_of(m) for m in modules()}
    assert packages <= set(RANK), f"add {sorted(packages - set(RANK))} to LAYERS (and to README's Layout)"


def test_imports_between_packages_run_downwards_only():
    bad = []
    for mod, targets in graph().items():
        src = package_of(mod)
        for target, line in targets:
            dst = package_of(target)
            if src != dst and RANK[dst] <= RANK[src]:
                way = "sideways" if RANK[dst] == RANK[src] else "upwards"
                bad.append(f"{modules()[mod].relative_to(ROOT)}:{line}: {mod} imports {target} ({way}: {src} -> {dst})")
    assert not bad, "\n".join(bad)


def find_cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan's algorithm, iterative)."""
    index, low, on_stack, stack, out = {}, {}, set(), [], []
    counter = [0]
    for root in edges:
        if root in index:
            continue
        work = [(root, iter(sorted(edges.get(root, ()))))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, it = work[-1]
            nxt = next(it, None)
            if nxt is not None:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter[0]
                    counter[0] += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(edges.get(nxt, ())))))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    m = stack.pop()
                    on_stack.discard(m)
                    comp.append(m)
                    if m == node:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def test_no_import_cycles():
    edges = {m: {t for t, _ in targets} for m, targets in graph().items()}
    cycles = find_cycles(edges)
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


@pytest.mark.parametrize("edges, expect", [
    ({"a": {"b"}, "b": {"c"}, "c": set()}, []),
    ({"a": {"b"}, "b": {"a"}}, [["a", "b"]]),
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c"]]),
])
def test_the_cycle_finder_finds_cycles(edges, expect):
    assert find_cycles(edges) == expect


def test_the_layering_check_sees_an_upward_import(tmp_path):
    """The checks must be able to fail: an io module importing fcnkit.apps is seen as an upward import."""
    p = PACKAGE / "io" / "atomic.py"
    found = imports(p, set(modules()))
    assert all(package_of(t) in ("errors", "config", "io") for t, _ in found)
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from fcnkit.apps import compare\n")
    assert [t for t, _ in imports(probe, set(modules()) | {"fcnkit.apps.compare"})] == ["fcnkit.apps.compare"]

"""The import graph of ``src/runnel``: one-way, with no cycle anywhere.

import-linter (``make contracts``) checks which layer may import which; this checks that no
group of modules imports itself around, counting every import: those inside functions and
those only made for type checkers (``if TYPE_CHECKING:``), which are still a dependency of
one module on another.
"""

from __future__ import annotations

from collections.abc import Iterator

import grimp

PACKAGE = "runnel"


def import_cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """The groups of modules that import each other in a loop (Tarjan's algorithm)."""
    modules = sorted(graph.modules)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    cycles: list[list[str]] = []

    def imports_of(module: str) -> Iterator[str]:
        return iter(sorted(graph.find_modules_directly_imported_by(module)))

    for root in modules:
        if root in index:
            continue
        # An explicit stack of (module, the imports still to look at) instead of recursion.
        work = [(root, imports_of(root))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            module, imported = work[-1]
            for other in imported:
                if other not in index:
                    index[other] = low[other] = len(index)
                    stack.append(other)
                    on_stack.add(other)
                    work.append(
                        (other, iter(sorted(graph.find_modules_directly_imported_by(other))))
                    )
                    break
                if other in on_stack:
                    low[module] = min(low[module], index[other])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[module])
                if low[module] == index[module]:
                    group = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        group.append(member)
                        if member == module:
                            break
                    if len(group) > 1:
                        cycles.append(sorted(group))
    return cycles


def test_no_modules_of_runnel_import_each_other_in_a_loop() -> None:
    graph = grimp.build_graph(PACKAGE, exclude_type_checking_imports=False)
    assert len(graph.modules) > 50  # the whole package was read, runnel.testing included
    assert "runnel.testing.harness" in graph.modules

    assert import_cycles(graph) == []


def test_the_cycle_finder_finds_a_loop() -> None:
    graph = grimp.ImportGraph()
    for module in ("p", "p.a", "p.b", "p.c", "p.d"):
        graph.add_module(module)
    graph.add_import(importer="p.a", imported="p.b")
    graph.add_import(importer="p.b", imported="p.c")
    graph.add_import(importer="p.c", imported="p.a")
    graph.add_import(importer="p.d", imported="p.a")

    assert import_cycles(graph) == [["p.a", "p.b", "p.c"]]


def test_the_runtime_imports_neither_the_app_nor_its_streams() -> None:
    graph = grimp.build_graph(PACKAGE, exclude_type_checking_imports=False)
    runtime = {m for m in graph.modules if m.startswith("runnel.runtime.")}
    for facade in ("runnel.app", "runnel.stream", "runnel.middleware.dead_letter"):
        for module in runtime:
            assert not graph.chain_exists(importer=module, imported=facade), (module, facade)

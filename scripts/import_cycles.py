"""Print every import circle among the project's packages, function-local imports included.

Run: .venv/bin/python scripts/import_cycles.py   (exit status 1 when there is one)
It reads the import graph with grimp (installed with import-linter) and looks for strongly
connected groups of modules, ignoring a package's import of its own submodules.
"""

import sys
from pathlib import Path

import grimp

PACKAGES = ("agentbot", "inbound", "portal", "domain", "deliveries", "subscriptions", "core")


def import_cycles() -> list[list[str]]:
    graph = grimp.build_graph(*PACKAGES, cache_dir=None)
    edges = {m: set() for m in graph.modules}
    for module in graph.modules:
        for imported in graph.find_modules_directly_imported_by(module):
            if not module.startswith(imported + "."):  # a module naming its parent package: no circle
                edges[module].add(imported)
    # Tarjan's strongly connected components, iteratively.
    index, low, on_stack, stack, groups, counter = {}, {}, set(), [], [], [0]
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter[0]
                    counter[0] += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    groups.append(sorted(group))
    return groups


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    cycles = import_cycles()
    for group in cycles:
        print("import circle:", " ↔ ".join(group))
    print(f"{len(cycles)} import circle(s)")
    sys.exit(1 if cycles else 0)

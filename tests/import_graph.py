"""The import graph of a source tree, read from the sources alone (nothing imported).

Every ``import`` and ``from ... import`` counts, at any depth of a module (imports
inside functions too: a lazy import hides a cycle, it does not remove it). An edge goes
from a module to the module it names; ``from pkg import sub`` names the submodule
``sub`` when there is one, else ``pkg`` itself. The implicit import of a module's parent
packages is not an edge.
"""

from __future__ import annotations

import ast
import os
from typing import NamedTuple


class Private(NamedTuple):
    """Module ``user`` takes the private name ``name`` from module ``owner``."""

    user: str
    owner: str
    name: str


def module_files(root: str, packages) -> dict:
    """Dotted module name -> file path, for every .py file of the packages under root."""
    found = {}
    for package in packages:
        for here, dirs, files in os.walk(os.path.join(root, package)):
            dirs[:] = sorted(d for d in dirs if not d.startswith((".", "__pycache__")))
            for name in files:
                if name.endswith(".py"):
                    rel = os.path.relpath(os.path.join(here, name), root)[:-3]
                    parts = rel.split(os.sep)
                    if parts[-1] == "__init__":
                        parts = parts[:-1]
                    found[".".join(parts)] = os.path.join(here, name)
    return found


def _base(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute module a ``from`` statement of ``module`` starts from."""
    if node.level == 0:
        return node.module or ""
    parts = module.split(".") if is_package else module.split(".")[:-1]
    parts = parts[: len(parts) - (node.level - 1)]
    return ".".join(parts + ([node.module] if node.module else []))


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def read(root: str, packages) -> tuple[dict, list]:
    """(graph: module -> set of modules it imports, privates: [Private]) over the
    package modules under root; only modules of the tree are nodes."""
    files = module_files(root, packages)
    graph, privates = {}, []
    for module, path in files.items():
        is_package = path.endswith("__init__.py")
        with open(path, encoding="utf-8") as fh:
            tree = ast.parse(fh.read(), filename=path)
        edges, aliases = set(), {}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.name in files:
                        edges.add(a.name)
                        if a.asname:
                            aliases[a.asname] = a.name
            elif isinstance(node, ast.ImportFrom):
                base = _base(module, is_package, node)
                for a in node.names:
                    sub = f"{base}.{a.name}"
                    if sub in files:
                        edges.add(sub)
                        aliases[a.asname or a.name] = sub
                    elif base in files:
                        edges.add(base)
                        if _private(a.name) and base != module:
                            privates.append(Private(module, base, a.name))
        for node in ast.walk(tree):  # alias._name, with alias a package module
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in aliases
                and _private(node.attr)
            ):
                privates.append(Private(module, aliases[node.value.id], node.attr))
        edges.discard(module)
        graph[module] = edges
    return graph, privates


def cycles(graph: dict) -> list:
    """The strongly connected components of more than one module (Tarjan), each a
    sorted list: every one of them is an import cycle."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found

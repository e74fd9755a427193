"""Where numba keeps its compiled kernels: one directory per version of the jitted code.

numba decides whether a cached function is still valid from the source file that
defines it alone. But a kernel inlines the jitted functions it calls from other modules
and freezes the global constants it reads from any module (e.g. the slot numbers of
``estimators``); after an edit or an upgrade that changes one of those but not the kernel's
own file, numba would load a kernel compiled from the old formulas and the run would
silently compute something else. So the cache lives in a directory named after a hash
of the key modules' sources: other sources, other directory, nothing stale is found.

The key modules are found from the sources, at every import, without importing them
(:func:`key_modules`, ~15 ms): every module of the package, subpackages included,
that holds jitted code (imports numba and decorates or wraps something with one of
``JIT_NAMES``), plus every package module those import, transitively (``from .x import
y``, ``from . import x``, ``from ..x import y``, ``import parallel_vmc.x``, at any depth
of the file; ``from pkg import sub`` counts the submodule, not ``pkg/__init__``), and
every module that imports one which declares ``EXTENDED_BY_IMPORTERS = True`` (it
registers an implementation there, which kernels reach without importing it). A
module that nothing jitted imports is not part of the key: editing it cannot change a
kernel. Not seen: modules imported by computed names (importlib), which jitted code
must not rely on.

The base directory is the user's ``NUMBA_CACHE_DIR`` if set, else
``$XDG_CACHE_HOME/parallel_vmc`` (``~/.cache/parallel_vmc``). Nothing is ever written
into the installed package: a cache folder left in ``site-packages/parallel_vmc`` after
``pip uninstall`` becomes a namespace package that shadows a later editable install.
This must run before the first jitted module is imported (``parallel_vmc/__init__``).
"""

from __future__ import annotations

import ast
import hashlib
import os
import re
import sys
import tempfile

PREFIX = "pvmc-sources-"
# Part of every key: raised when the files in a cache directory change their meaning,
# so that none written before is read (2: data files named by their key, cache_file.py;
# a directory of version 1 may hold an index entry that points at another signature).
CACHE_FORMAT = 2
# numba's compiling decorators and functions; a module naming one of them (and
# importing numba) holds jitted code
JIT_NAMES = frozenset(
    {
        "njit",
        "jit",
        "vectorize",
        "guvectorize",
        "cfunc",
        "stencil",
        "jitclass",
        "generated_jit",
        "overload",
        "overload_method",
        "register_jitable",
        "inlined",  # jit/inline.py's decorators
        "kernel",
    }
)
# A module that sets this name to True at its top level is extended by the modules that
# import it (they register implementations of its functions: numba overloads): its
# closure holds them, although it does not import them.
EXTENDED = "EXTENDED_BY_IMPORTERS"
# cheap screen before a module is parsed (parsing is most of the time taken): a jitted
# module mentions numba and one of JIT_NAMES
_NAMES_JIT = re.compile(rb"\b(?:" + b"|".join(n.encode() for n in sorted(JIT_NAMES)) + rb")\b")


def _package_sources(package_dir: str) -> dict:
    """Relative path ('kernels.py', 'wavefunction/rbm.py') -> bytes of every module
    of the package (hidden directories and __pycache__ skipped)."""
    sources = {}
    for root, dirs, files in os.walk(package_dir):
        dirs[:] = sorted(d for d in dirs if not d.startswith((".", "__pycache__")))
        for name in files:
            if name.endswith(".py"):
                full = os.path.join(root, name)
                rel = os.path.relpath(full, package_dir).replace(os.sep, "/")
                with open(full, "rb") as fh:
                    sources[rel] = fh.read()
    return sources


def _statements(body):
    """Every statement in body, nested ones too (imports inside functions, ifs, try);
    cheaper than ast.walk, which visits every expression."""
    for node in body:
        yield node
        for field in ("body", "orelse", "finalbody", "handlers", "cases"):
            yield from _statements(getattr(node, field, ()))


def _jit_head(expr) -> bool:
    """Is expr (a decorator or a called value) numba's: ``njit``, ``numba.njit``,
    ``njit(cache=True)``, ``nb.vectorize([...])``?"""
    while isinstance(expr, ast.Call):
        expr = expr.func
    return (isinstance(expr, ast.Name) and expr.id in JIT_NAMES) or (
        isinstance(expr, ast.Attribute) and expr.attr in JIT_NAMES
    )


def _is_jitted(tree: ast.Module) -> bool:
    """Does the module import numba and compile with it: a def or class decorated by
    one of JIT_NAMES, or one applied in an assignment (``f = njit(g)``)?"""
    imports_numba = compiles = False
    for node in _statements(tree.body):
        if isinstance(node, ast.Import):
            imports_numba |= any(a.name.split(".")[0] == "numba" for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            imports_numba |= node.level == 0 and module.split(".")[0] == "numba"
            imports_numba |= module == "inline" or module.endswith("jit.inline")
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            compiles |= any(_jit_head(d) for d in node.decorator_list)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.Expr)) and node.value:
            compiles |= _jit_head(node.value)
    return imports_numba and compiles


def _imported_modules(tree: ast.Module, rel: str, package: str, sources: dict) -> set:
    """The package modules (keys of ``sources``) that module ``rel`` imports."""
    here = rel.split("/")[:-1]  # the package the module lives in, as parts

    def module_file(parts):
        """'a/b.py' or 'a/b/__init__.py' for the dotted module parts, or None."""
        for candidate in ("/".join(parts) + ".py", "/".join(parts + ["__init__.py"])):
            if candidate in sources:
                return candidate
        return None

    found = set()

    def add(parts, names=None):
        """The module ``parts`` (``import``), or for ``from parts import names`` each
        name's submodule if it is one, else the module that binds it."""
        for name in names or [None]:
            sub = module_file(parts + [name]) if name else None
            target = sub or module_file(parts)
            if target:
                found.add(target)

    for node in _statements(tree.body):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == package:
                    add(parts[1:])
        elif isinstance(node, ast.ImportFrom):
            names = [a.name for a in node.names]  # "*": the module itself
            mod = (node.module or "").split(".") if node.module else []
            if node.level:
                if node.level - 1 > len(here):
                    continue  # above the package
                base = here[: len(here) - (node.level - 1)]
            elif mod and mod[0] == package:
                base, mod = [], mod[1:]
            else:
                continue
            add(base + mod, names)
    return found


def _import_graph(package_dir: str) -> tuple:
    """(sources, edges): every module's source bytes by relative path, and for each key
    module (jitted, or imported by one, transitively) the package modules it imports.
    Parses only the modules that pass the screen and what they reach (~15 ms; no
    module is imported). A module that does not parse is kept, conservatively, but
    not followed: the import of the package must not fail on a stray broken file."""
    sources = _package_sources(package_dir)
    package = os.path.basename(os.path.normpath(package_dir))
    trees = {}

    def tree(rel):
        if rel not in trees:
            try:
                trees[rel] = ast.parse(sources[rel], filename=rel)
            except (SyntaxError, ValueError):
                trees[rel] = None
        return trees[rel]

    todo = [
        rel
        for rel, src in sources.items()
        if b"numba" in src
        and _NAMES_JIT.search(src)
        and (tree(rel) is None or _is_jitted(tree(rel)))
    ]
    edges, extended = {}, set()
    while todo:
        while todo:
            rel = todo.pop()
            if rel not in edges:
                found = tree(rel)
                edges[rel] = (
                    set() if found is None else _imported_modules(found, rel, package, sources)
                )
                todo.extend(edges[rel] - edges.keys())
        for target in sorted(edges.keys() - extended):
            if _extended_by_importers(tree(target)):
                extended.add(target)
                importers = _importers(target, sources, tree, package)
                edges[target] |= importers
                todo.extend(importers - edges.keys())
    return sources, edges


def _extended_by_importers(tree) -> bool:
    """Does the module set ``EXTENDED_BY_IMPORTERS = True`` at its top level (the
    modules importing it register implementations of its functions, see
    ``wavefunction/generic.py``)?"""
    for node in tree.body if tree is not None else ():
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
            named = any(isinstance(t, ast.Name) and t.id == EXTENDED for t in node.targets)
            if named and node.value.value is True:
                return True
    return False


def _importers(target: str, sources: dict, tree, package: str) -> set:
    """The package modules that import the module target."""
    stem = target.rsplit("/", 1)[-1].removesuffix(".py").encode()
    return {
        rel
        for rel, src in sources.items()
        if rel != target
        and stem in src  # cheap screen before parsing
        and tree(rel) is not None
        and target in _imported_modules(tree(rel), rel, package, sources)
    }


def key_modules(package_dir: str) -> dict:
    """The modules the jit cache is keyed by: relative path -> source bytes, for every
    jitted module of the package and the package modules they import, transitively."""
    sources, edges = _import_graph(package_dir)
    return {rel: sources[rel] for rel in sorted(edges)}


def _digest(modules) -> str:
    """16 hex digits over the (relative path, source bytes) pairs, in path order."""
    h = hashlib.sha256(b"format %d\0" % CACHE_FORMAT)
    for rel, src in sorted(modules):
        h.update(rel.encode() + b"\0")
        h.update(hashlib.sha256(src).digest())  # fixed length: no ambiguous joins
    return h.hexdigest()[:16]


def closure_keys(package_dir: str) -> dict:
    """Relative path -> key of every key module: a hash of its own source and of every
    package module it imports, transitively (its closure). A kernel can only inline or
    freeze what its closure holds, so an edit outside it cannot make its cached
    machine code stale: editing ``generative/train.py`` leaves the VMC kernels' keys
    alone, editing ``wavefunction/rbm.py`` changes the key of every module above it."""
    sources, edges = _import_graph(package_dir)
    keys = {}
    for rel in edges:
        seen, todo = set(), [rel]
        while todo:
            m = todo.pop()
            if m not in seen:
                seen.add(m)
                todo.extend(edges.get(m, ()))
        keys[rel] = _digest((m, sources[m]) for m in seen)
    return keys


def source_hash(package_dir: str) -> str:
    """Hash of the key modules' paths and sources (16 hex digits)."""
    return _digest(key_modules(package_dir).items())


def cache_dir(package_dir: str, environ=os.environ) -> str:
    """The numba cache directory for the sources in package_dir."""
    base = environ.get("NUMBA_CACHE_DIR")
    if base:
        base = os.path.abspath(base)
        if os.path.basename(base).startswith(PREFIX):  # inherited from a parent pvmc
            base = os.path.dirname(base)
    else:
        xdg = environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        base = os.path.join(xdg, "parallel_vmc")
    return os.path.join(base, PREFIX + source_hash(package_dir))


def _usable(path: str) -> bool:
    """Can numba write cache files into path (created if needed)?"""
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".probe-"):
            pass
    except OSError:
        return False
    return True


def configure(package_dir: str) -> str:
    """Point numba's cache at :func:`cache_dir` (or, if that cannot be written, a keyed
    directory under the system's temporary directory: numba would otherwise fall back
    to the unkeyed ``__pycache__`` and could load a stale kernel); returns it.

    This sets ``NUMBA_CACHE_DIR`` for the whole process (and its children)."""
    path = cache_dir(package_dir)
    if not _usable(path):
        # not named parallel_vmc: a process started in the temporary directory would
        # import that folder as a namespace package in place of the real one
        path = os.path.join(
            tempfile.gettempdir(), "pvmc-numba-cache", PREFIX + source_hash(package_dir)
        )
        _usable(path)
    os.environ["NUMBA_CACHE_DIR"] = path  # read by numba when it is imported
    locators = locator_classes(os.environ.get("NUMBA_CACHE_LOCATOR_CLASSES", ""))
    os.environ["NUMBA_CACHE_LOCATOR_CLASSES"] = locators
    if "numba" in sys.modules:  # already imported: set it directly
        import numba

        numba.config.CACHE_DIR = path
        numba.config.CACHE_LOCATOR_CLASSES = locators
    return path


def locator_classes(current: str) -> str:
    """numba's list of cache locators with the package's per-closure one first
    (``locator.py``); current: the list already set (empty: numba's own, in its order).
    numba versions before the setting existed ignore it."""
    ours = f"{__package__}.locator.ClosureCacheLocator"
    rest = [c.strip() for c in current.split(",") if c.strip() and c.strip() != ours]
    return ",".join([ours] + (rest or NUMBA_LOCATORS))


# numba's own locators, in its order (numba.core.caching._CacheImpl)
NUMBA_LOCATORS = [
    "UserProvidedCacheLocator",
    "InTreeCacheLocator",
    "UserWideCacheLocator",
    "IPythonCacheLocator",
    "ZipCacheLocator",
]

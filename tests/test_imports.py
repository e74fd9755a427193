"""The package's import structure: no cycles, no private names taken across modules,
``analysis`` above ``parallel_vmc`` and never below it, and config validation without
numba. The checker itself is tested on small trees with each defect planted."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import import_graph
from conftest import ROOT, subprocess_env

PACKAGES = ("parallel_vmc", "analysis")


def _tree(tmp_path, files: dict):
    for rel, text in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return import_graph.read(str(tmp_path), ["pkg"])


def test_no_import_cycles():
    graph, _ = import_graph.read(ROOT, PACKAGES)
    assert len(graph) > 50
    assert import_graph.cycles(graph) == []


def test_no_private_names_across_modules():
    _, privates = import_graph.read(ROOT, PACKAGES)
    assert privates == []


def test_analysis_is_above_the_package():
    graph, _ = import_graph.read(ROOT, PACKAGES)
    below = {
        m: sorted(e for e in edges if e.split(".")[0] == "analysis")
        for m, edges in graph.items()
        if m.split(".")[0] == "parallel_vmc"
    }
    assert {m: e for m, e in below.items() if e} == {}


def test_checker_finds_a_lazy_cycle(tmp_path):
    graph, _ = _tree(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "from . import b\n",
            "pkg/sub/__init__.py": "",
            "pkg/b.py": "def f():\n    from .sub.c import g\n",
            "pkg/sub/c.py": "def g():\n    from ..a import x\n",
        },
    )
    assert import_graph.cycles(graph) == [["pkg.a", "pkg.b", "pkg.sub.c"]]


def test_checker_finds_private_names(tmp_path):
    _, privates = _tree(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "_hidden = 1\ndef _f():\n    return _hidden\n",
            "pkg/b.py": "from .a import _f\n",
            "pkg/c.py": "from . import a as mod\nX = mod._hidden\n",
            "pkg/d.py": "from .a import __doc__\nimport pkg.a\n",
        },
    )
    assert sorted(privates) == [("pkg.b", "pkg.a", "_f"), ("pkg.c", "pkg.a", "_hidden")]


def test_validate_imports_no_numba(tmp_path):
    """``pvmc validate`` (config loading, the checks, the preflight sizes) runs without
    numba: a config is checked in a fraction of a second, on a login node too (also
    the packing check of hard spheres, which needs the starting cloud's width).

    It runs in an empty directory: the quick start's output path is relative, and a
    ``runs/quickstart.h5`` left by the README's first command would (rightly) be refused."""
    configs = [
        os.path.join(ROOT, "configs", name)
        for name in ("quickstart.yaml", "bosons3d_N10_elliptic.yaml")
    ]
    code = (
        "import sys\n"
        "from parallel_vmc.cli.main import main\n"
        f"for config in {configs!r}:\n"
        "    code = main(['validate', config])\n"
        "    assert code == 0, code\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('numba', 'llvmlite'))\n"
        "assert not bad, bad[:5]\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]

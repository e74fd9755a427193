"""One spelling in what users read: -ize, as the config's own key ``optimizer`` has it.

Scanned: every string literal of the packages that is not a docstring (messages, help
texts, progress labels, report rows, plot labels, config descriptions), the READMEs, the
pages of docs/, the changelog, the configs' comments, and the actual output of every
command's ``--help``, of ``pvmc validate`` and of ``python -m analysis`` on a run file.
A docstring is for developers and stays out (the jitted modules' docstrings are part of
the numba cache key: an edit there recompiles every kernel)."""

from __future__ import annotations

import ast
import glob
import os
import subprocess
import sys

import pytest
from analysis_fixtures import write_run_file
from conftest import ROOT, subprocess_env

WRONG = "optimis"  # optimise, optimised, optimisation, optimiser, ...
PACKAGES = ("parallel_vmc", "analysis")


def _docstrings(tree) -> set:
    """The ids of the string nodes that are docstrings (module, class, function)."""
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def literal_strings(path: str):
    """(line, text) of every string constant of a module but its docstrings; the parts
    of f-strings included."""
    with open(path, encoding="utf-8") as fh:
        tree = ast.parse(fh.read(), path)
    skip = _docstrings(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            yield node.lineno, node.value


def test_the_scanner_sees_messages_and_skips_docstrings(tmp_path):
    src = tmp_path / "m.py"
    src.write_text(
        '"""optimise here is a docstring."""\n'
        "def f(n):\n"
        '    """So is this optimiser."""\n'
        '    print(f"optimisation {n} done", "x")\n'
    )
    found = [text for _, text in literal_strings(str(src)) if WRONG in text.lower()]
    assert found == ["optimisation "]


def test_ize_spelling_in_the_strings_of_the_code():
    found = [
        f"{os.path.relpath(path, ROOT)}:{line}: {text!r}"
        for package in PACKAGES
        for path in sorted(glob.glob(os.path.join(ROOT, package, "**", "*.py"), recursive=True))
        for line, text in literal_strings(path)
        if WRONG in text.lower()
    ]
    assert found == []


def test_ize_spelling_in_the_documents_and_configs():
    paths = [os.path.join(ROOT, "README.md"), os.path.join(ROOT, "analysis", "README.md")]
    paths += [os.path.join(ROOT, "jobs", "README.md"), os.path.join(ROOT, "CHANGELOG.md")]
    paths += sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))
    assert len(paths) > 4, "docs/*.md not found"
    paths += sorted(glob.glob(os.path.join(ROOT, "configs", "*.yaml")))
    found = []
    for path in paths:
        with open(path, encoding="utf-8") as fh:
            for k, line in enumerate(fh, 1):
                if WRONG in line.lower():
                    found.append(f"{os.path.relpath(path, ROOT)}:{k}: {line.strip()}")
    assert found == []


def _output(args, cwd) -> str:
    done = subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done.stdout + done.stderr


def test_ize_spelling_in_what_the_commands_print(tmp_path):
    """The help of every command, a resolved config and an analysis report, as printed."""
    run = tmp_path / "r.h5"
    write_run_file(run, format_version=3)
    commands = [["-m", "parallel_vmc", "--help"]]
    commands += [
        ["-m", "parallel_vmc", name, "--help"]
        for name in ("run", "resume", "validate", "info", "mpi", "bench", "train")
    ]
    commands += [
        ["-m", "parallel_vmc", "validate", os.path.join(ROOT, "configs", "quickstart.yaml")],
        ["-m", "analysis", "--help"],
        ["-m", "analysis", "table", "--help"],
        ["-m", "analysis", str(run)],
    ]
    printed = {" ".join(c[1:]): _output(c, tmp_path) for c in commands}
    assert "optimization" in printed[f"analysis {run}"]  # the report's row is there
    assert {c: text for c, text in printed.items() if WRONG in text.lower()} == {}


@pytest.mark.parametrize("text", ["Optimised", "the OPTIMISER", "optimisation"])
def test_the_check_is_case_blind(text):
    assert WRONG in text.lower()

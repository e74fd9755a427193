"""The documents cannot rot silently: README.md and docs/*.md are checked against the
repository and the real command lines.

* Every relative link ``[text](path)`` resolves to a file or directory of the
  repository, and its ``#anchor``, where it has one, to a heading of the Markdown file
  it points to (GitHub's anchors: the heading in lower case, punctuation dropped,
  spaces as hyphens, ``-1``, ``-2`` for repeats).
* Every repository path written in backticks (``configs/x.yaml``,
  ``parallel_vmc/dmc/walk.py``, ``jobs/single.sbatch``; a path inside the package may
  leave out ``parallel_vmc/``: ``wavefunction/compose.py``) names a file or directory
  of the repository (``*`` and ``{a,b}`` are patterns that must match one at least), and
  every dotted module name (``parallel_vmc.stats.chains``, ``analysis.runfile.read_run``)
  a module, or a name defined in one.
* Every command in a fenced shell code block (```` ```bash ````; in another block only
  after a ``$ `` prompt) that starts with ``pvmc`` (also after ``mpiexec -n N``,
  ``srun ...``, ``VAR=value`` or another command and ``&&``) or with
  ``python -m analysis`` is accepted by the program's own argument parser (only
  parsed, nothing runs), and the repository paths among its arguments exist. A synopsis
  (a line with ``[--option]`` or ``...``) is not a command and is left alone.

"The repository" is what git lists: tracked files and files not yet added that git
does not ignore (so that a page can be checked before it is committed); outside a git
checkout, the files on disk.
"""

from __future__ import annotations

import contextlib
import fnmatch
import io
import os
import re
import shlex
import subprocess
import unicodedata

import pytest
from conftest import ROOT

DOCS = ["README.md"] + sorted(
    os.path.join("docs", name)
    for name in os.listdir(os.path.join(ROOT, "docs"))
    if name.endswith(".md")
)

FENCE = re.compile(r"^\s*(```|~~~)")
LINK = re.compile(r"(?<!!)\[(?:[^\[\]]|\[[^\]]*\])*\]\(([^()\s]+)(?:\s+\"[^\"]*\")?\)")
CODE_SPAN = re.compile(r"(`+)(.+?)\1")
PATHLIKE = re.compile(r"^[\w.*{},-]+(/[\w.*{},-]+)+/?$")
ROOT_FILES = ("README.md", "CHANGELOG.md", "LICENSE", "CITATION.cff", "pyproject.toml")
DOTTED = re.compile(r"^(parallel_vmc|analysis)(\.\w+)+$")


# ----------------------------------------------------------------------------- the tree
def repository_files() -> set:
    """Paths (relative, with /) of the files git lists, or of every file on disk."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        files = {p for p in out.splitlines() if os.path.exists(os.path.join(ROOT, p))}
    except (OSError, subprocess.CalledProcessError):
        files = set()
    if not files:
        for base, dirs, names in os.walk(ROOT):
            dirs[:] = [d for d in dirs if not d.startswith(".") or d == ".ci"]
            for name in names:
                files.add(os.path.relpath(os.path.join(base, name), ROOT).replace(os.sep, "/"))
    return files


FILES = repository_files()
DIRS = {p.rsplit("/", k)[0] for p in FILES for k in range(1, p.count("/") + 1)}
TOP = {p.split("/")[0] for p in FILES}


def exists(rel: str) -> bool:
    rel = os.path.normpath(rel).replace(os.sep, "/").rstrip("/")
    return rel in FILES or rel in DIRS


def expand(pattern: str) -> list:
    """``a{b,c}d`` -> [abd, acd] (one level of braces is all the documents use)."""
    m = re.search(r"\{([^{}]*)\}", pattern)
    if not m:
        return [pattern]
    return [
        variant
        for part in m.group(1).split(",")
        for variant in expand(pattern[: m.start()] + part + pattern[m.end() :])
    ]


def resolves(rel: str) -> bool:
    """A path, or a pattern with * and {a,b}: each variant names (or matches) a file."""
    for variant in expand(rel):
        if "*" in variant:
            if not any(fnmatch.fnmatch(p, variant.rstrip("/")) for p in FILES | DIRS):
                return False
        elif not exists(variant):
            return False
    return True


# ----------------------------------------------------------------------------- markdown
def read(doc: str) -> list:
    with open(os.path.join(ROOT, doc), encoding="utf-8") as fh:
        return fh.read().splitlines()


def prose(doc: str):
    """(line number, text) of the lines outside fenced code blocks."""
    fenced = False
    for k, line in enumerate(read(doc), 1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            yield k, line


SHELL = ("bash", "sh", "shell", "console")


def code_blocks(doc: str):
    """(line number, text, is a shell block) of the lines inside fenced code blocks, with
    continued lines (ending in a backslash) joined. A shell block is one marked
    ``bash``, ``sh``, ``shell`` or ``console``."""
    fenced, shell, pending, start = False, False, "", 0
    for k, line in enumerate(read(doc), 1):
        if FENCE.match(line):
            fenced, pending = not fenced, ""
            shell = fenced and FENCE.sub("", line).strip().lower() in SHELL
            continue
        if not fenced:
            continue
        if line.rstrip().endswith("\\"):
            pending, start = pending + line.rstrip()[:-1] + " ", start or k
            continue
        yield (start or k), pending + line, shell
        pending, start = "", 0


def slug(heading: str) -> str:
    """GitHub's anchor of a heading's text."""
    text = re.sub(r"`([^`]*)`", r"\1", heading.strip()).lower()
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)  # a link: its text
    kept = "".join(c for c in text if c in " -_" or unicodedata.category(c)[0] in ("L", "N", "M"))
    return kept.replace(" ", "-")


def anchors(doc: str) -> set:
    seen: dict = {}
    for _, line in prose(doc):
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m:
            base = slug(m.group(1))
            n = seen.get(base, 0)
            seen[base] = n + 1
            yield base if n == 0 else f"{base}-{n}"


def _spans(line: str):
    return [m.group(2).strip() for m in CODE_SPAN.finditer(line)]


# ----------------------------------------------------------------------------- the checks
def link_problems(doc: str) -> list:
    problems = []
    here = os.path.dirname(doc)
    for k, line in prose(doc):
        for target in LINK.findall(CODE_SPAN.sub("", line)):
            if re.match(r"^[a-z]+:", target):  # https:, mailto:
                continue
            path, _, anchor = target.partition("#")
            rel = os.path.normpath(os.path.join(here, path)) if path else doc
            where = f"{doc}:{k}: ({target})"
            if not exists(rel):
                problems.append(f"{where}: no such file or directory")
            elif anchor and rel.endswith(".md") and anchor not in set(anchors(rel)):
                problems.append(f"{where}: no heading #{anchor} in {rel}")
    return problems


def module_problem(dotted: str) -> str | None:
    """None where ``dotted`` is a module, a package or a name in one."""
    parts = dotted.split(".")
    for n in range(len(parts), 0, -1):
        base = "/".join(parts[:n])
        source = next((p for p in (base + ".py", base + "/__init__.py") if p in FILES), None)
        if source is None:
            continue
        rest = parts[n:]
        if len(rest) > 2:
            return f"{'.'.join(parts[:n])} has no {'.'.join(rest)}"
        with open(os.path.join(ROOT, source), encoding="utf-8") as fh:
            text = fh.read()
        missing = [name for name in rest if not re.search(rf"\b{re.escape(name)}\b", text)]
        return f"{source} defines no {missing[0]}" if missing else None
    return "no such module"


def path_problem(token: str) -> str | None:
    """None unless ``token`` names a path of the repository that is not there."""
    token = token.rstrip(".,;:")
    if token in ROOT_FILES or token == ".ci/run":
        return None if exists(token) else "no such file"
    if DOTTED.match(token):
        return module_problem(token)
    if not PATHLIKE.match(token):
        return None
    first = token.split("/")[0]
    if first in TOP:
        return None if resolves(token) else "no such file or directory"
    if token.endswith(".py"):  # a path inside the package: wavefunction/compose.py
        ok = any(resolves(f"{pkg}/{token}") for pkg in ("parallel_vmc", "analysis"))
        return None if ok else "no such module in parallel_vmc/ or analysis/"
    return None


def span_problems(doc: str) -> list:
    """Each word of a code span (a path, or a command such as `pvmc run configs/x.yaml`)."""
    return [
        f"{doc}:{k}: `{span}`: {word}: {problem}"
        for k, line in prose(doc)
        for span in _spans(line)
        for word in span.split()
        if (problem := path_problem(word.strip("'\"")))
    ]


# ----------------------------------------------------------------------------- commands
def _parsers():
    from analysis import cli as analysis_cli
    from parallel_vmc.cli.main import build_parser

    return {
        "pvmc": build_parser(),
        "analysis": analysis_cli._summary_parser(),
        "analysis table": analysis_cli._table_parser(),
    }


def commands(line: str, shell: bool = True):
    """The commands of a line of a code block that this test checks: (program,
    arguments). In a block that is not marked as shell (program output, say), only a
    line with a ``$ `` prompt is a command."""
    line = line.strip()
    if line.startswith("$ "):
        line = line[2:]
    elif not shell:
        return
    if "$(" in line or "`" in line:
        return
    try:
        lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|")
        lexer.whitespace_split = True
        tokens = list(lexer)
    except ValueError:
        return
    segment: list = []
    for token in tokens + [";"]:
        if token in (";", "&&", "||", "|", "&"):
            yield from _command(segment)
            segment = []
        else:
            segment.append(token)


def _command(words: list):
    if any(w == "..." or re.match(r"^\[-", w) for w in words):
        return  # a synopsis: `pvmc run CONFIG [--set ...]`
    while words and re.match(r"^[A-Z_][A-Z0-9_]*=", words[0]):  # VAR=value cmd
        words = words[1:]
    if words[:1] == ["mpiexec"] and len(words) > 3 and words[1] in ("-n", "-np"):
        words = words[3:]
    elif words[:1] == ["srun"]:
        words = words[1:]
        while words and words[0].startswith("-"):
            words = words[1:]
    if words[:1] == ["pvmc"]:
        yield "pvmc", words[1:]
    elif words[:3] == ["python", "-m", "parallel_vmc"]:
        yield "pvmc", words[3:]
    elif words[:3] == ["python", "-m", "analysis"]:
        if words[3:4] == ["table"]:
            yield "analysis table", words[4:]
        else:
            yield "analysis", words[3:]


def parse_problem(parser, args: list) -> str | None:
    """None if the parser accepts ``args`` (a --help or --version exits 0: accepted)."""
    from analysis.cli import UsageError

    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            parser.parse_args(args)
    except SystemExit as exc:
        if exc.code not in (0, None):
            return err.getvalue().strip().splitlines()[-1] if err.getvalue() else str(exc)
    except UsageError as exc:
        return str(exc)
    return None


def command_problems(doc: str, parsers: dict) -> list:
    problems = []
    for k, line, shell in code_blocks(doc):
        for program, args in commands(line, shell):
            where = f"{doc}:{k}: {program} {' '.join(args)}"
            problem = parse_problem(parsers[program], args)
            if problem:
                problems.append(f"{where}: {problem}")
            problems += [
                f"{where}: {arg}: {p}"
                for arg in args
                if "=" not in arg and (p := path_problem(arg)) and arg.split("/")[0] in TOP
            ]
    return problems


# ----------------------------------------------------------------------------- tests
@pytest.mark.parametrize("doc", DOCS)
def test_links_resolve(doc):
    assert link_problems(doc) == []


@pytest.mark.parametrize("doc", DOCS)
def test_paths_in_backticks_exist(doc):
    assert span_problems(doc) == []


@pytest.mark.parametrize("doc", DOCS)
def test_commands_in_code_blocks_parse(doc):
    assert command_problems(doc, _parsers()) == []


def test_docs_index_lists_every_page():
    index = "\n".join(read(os.path.join("docs", "README.md")))
    pages = [d for d in DOCS if d.startswith("docs") and not d.endswith("README.md")]
    assert [p for p in pages if f"({os.path.basename(p)})" not in index] == []


def test_train_config_reference_documents_every_key():
    from parallel_vmc.generative.config import SPEC

    page = "\n".join(read(os.path.join("docs", "generative.md")))
    keys = [f"{section}.{key}" for section, fields in SPEC.items() for key in fields]
    assert [k for k in keys + ["dbn.layers", "seed"] if f"`{k}`" not in page] == []


# ----------------------------------------------------------------------------- the checker
def test_the_checker_finds_what_is_wrong(tmp_path):
    """Planted defects: each is found, and what is right passes."""
    assert path_problem("configs/quickstart.yaml") is None
    assert path_problem("configs/no_such.yaml") == "no such file or directory"
    assert path_problem("wavefunction/compose.py") is None
    assert path_problem("wavefunction/nothing.py") is not None
    assert path_problem("configs/dot2d_omega{1.0,0.5,0.1}.yaml") is None
    assert path_problem("configs/dot2d_omega{1.0,0.7}.yaml") is not None
    assert path_problem("tests/test_analysis_*.py") is None
    assert path_problem("runs/quickstart.h5") is None  # an output, not the repository's
    assert path_problem("/production/observables") is None  # an HDF5 path
    assert path_problem("parallel_vmc.stats.chains.chain_verdict") is None
    assert path_problem("parallel_vmc.stats.nothing") is not None
    assert slug("Generative RBMs: `pvmc train`") == "generative-rbms-pvmc-train"
    assert slug("The exact energy: Padé-Jastrow factor") == "the-exact-energy-padé-jastrow-factor"
    pvmc = _parsers()["pvmc"]
    ok = "mpiexec -n 2 pvmc run configs/quickstart.yaml --set sampler.method=gibbs  # a note"
    assert [parse_problem(pvmc, a) for _, a in commands(ok)] == [None]
    bad = "pvmc run configs/quickstart.yaml --sett x=1"
    assert [bool(parse_problem(pvmc, a)) for _, a in commands(bad)] == [True]
    two = ". .venv/bin/activate && pip install . && srun --mpi=pmi2 pvmc info RUN.h5"
    assert [(p, a) for p, a in commands(two)] == [("pvmc", ["info", "RUN.h5"])]

"""numba's cache is keyed by every jitted module of the package and every package module
they import, found from the sources: an edit of an inlined formula or a frozen constant
outside kernels.py can never bring back a kernel compiled from the old one."""

import os
import shutil
import subprocess
import sys

import numba

import parallel_vmc
from parallel_vmc.jit import cache as jit_cache

PACKAGE = os.path.dirname(parallel_vmc.__file__)


def _copy_sources(tmp_path):
    """A copy of the package's sources as tmp_path/parallel_vmc; returns its path."""
    dest = tmp_path / "parallel_vmc"
    shutil.copytree(PACKAGE, dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return str(dest)


def _write(directory, rel, text):
    path = os.path.join(directory, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as fh:
        fh.write(text)


JITTED = "from numba import njit\n\n\n@njit(cache=True)\ndef f(x):\n    return x\n"


def test_every_jitted_module_is_part_of_the_key(tmp_path):
    jitted = set()
    for root, _, files in os.walk(PACKAGE):
        for name in files:
            full = os.path.join(root, name)
            if name.endswith(".py") and "@njit" in open(full).read():
                jitted.add(os.path.relpath(full, PACKAGE).replace(os.sep, "/"))
    assert {
        "sampling/kernels.py",
        "rng.py",
        "hamiltonian/trap.py",
        "sampling/observables.py",
    } <= jitted
    d = _copy_sources(tmp_path)
    key = jit_cache.key_modules(d)
    assert jitted <= set(key)
    env = {"NUMBA_CACHE_DIR": str(tmp_path / "base")}
    before = jit_cache.cache_dir(d, env)
    for rel in key:
        path = os.path.join(d, rel)
        original = open(path).read()
        with open(path, "w") as fh:
            fh.write(original + "\n# edited\n")
        assert jit_cache.cache_dir(d, env) != before, rel
        with open(path, "w") as fh:
            fh.write(original)
    assert jit_cache.cache_dir(d, env) == before


def test_modules_imported_by_jitted_code_are_part_of_the_key():
    """Kernels freeze the constants they read from other modules (observables reads the
    schema for its shell volumes; the kernels inline observables, rng, system)."""
    key = jit_cache.key_modules(PACKAGE)
    assert {
        "runfile/schema.py",
        "sampling/observables.py",
        "rng.py",
        "hamiltonian/geometry.py",
    } <= set(key)
    assert not {"runfile/output.py", "run/driver.py", "cli/main.py", "jit/cache.py"} & set(key)


def test_a_new_jitted_module_changes_the_key(tmp_path):
    d = _copy_sources(tmp_path)
    before = jit_cache.source_hash(d)
    _write(d, "extra.py", JITTED)
    assert jit_cache.source_hash(d) != before
    assert "extra.py" in jit_cache.key_modules(d)
    # in a subpackage too, in any of numba's spellings, and never imported
    for k, text in enumerate(
        [
            JITTED,
            "import numba\n\n\n@numba.vectorize\ndef g(x):\n    return x\n",
            "raise RuntimeError('imported')\nimport numba as nb\nh = nb.njit(lambda x: x)\n",
        ]
    ):
        _write(d, f"newsub/m{k}.py", text)
        assert f"newsub/m{k}.py" in jit_cache.key_modules(d)


def test_a_module_outside_the_jitted_code_leaves_the_key_alone(tmp_path):
    d = _copy_sources(tmp_path)
    before = jit_cache.source_hash(d)
    # imports nothing jitted, or only imports numba (its version) without compiling
    _write(d, "report.py", "from .output import RunFile\nX = 1\n")
    _write(d, "versions.py", "def v():\n    import numba\n    return numba.__version__\n")
    _write(d, "broken_scratch.py", "def (:\n")  # not jitted: never parsed
    assert jit_cache.source_hash(d) == before


def test_editing_a_constants_module_imported_by_jitted_code_changes_the_key(tmp_path):
    d = _copy_sources(tmp_path)
    _write(d, "slots.py", "SLOT = 3\n")
    _write(d, "layout.py", "from .slots import SLOT\nWIDTH = SLOT + 1\n")  # transitive
    _write(d, "deep/__init__.py", "")
    _write(
        d,
        "deep/kern.py",
        "from numba import njit\n\nfrom .. import layout\n\n\n"
        "@njit(cache=True)\ndef f(x):\n    return x * layout.WIDTH\n",
    )
    before = jit_cache.source_hash(d)
    assert {"slots.py", "layout.py", "deep/kern.py"} <= set(jit_cache.key_modules(d))
    _write(d, "slots.py", "SLOT = 4\n")
    assert jit_cache.source_hash(d) != before
    # absolute spelling of the same import
    _write(d, "deep/kern.py", JITTED + "from parallel_vmc.slots import SLOT\n")
    assert "slots.py" in jit_cache.key_modules(d)


def test_the_key_imports_nothing(tmp_path):
    d = _copy_sources(tmp_path)
    loaded = set(sys.modules)
    jit_cache.key_modules(d)
    assert set(sys.modules) == loaded


def test_user_cache_dir_is_the_base_and_is_not_nested(tmp_path):
    d = _copy_sources(tmp_path)
    path = jit_cache.cache_dir(d, {"NUMBA_CACHE_DIR": str(tmp_path / "mine")})
    assert os.path.dirname(path) == str(tmp_path / "mine")
    # A child process inherits the keyed directory: it must not nest another level.
    assert jit_cache.cache_dir(d, {"NUMBA_CACHE_DIR": path}) == path


def test_this_process_uses_the_keyed_directory():
    assert numba.config.CACHE_DIR == jit_cache.cache_dir(PACKAGE)


def test_unusable_cache_dir_falls_back_to_a_keyed_temporary_one(tmp_path, monkeypatch):
    """A NUMBA_CACHE_DIR that cannot be written (here: below a regular file) must not
    let numba fall back to the unkeyed __pycache__."""
    d = _copy_sources(tmp_path)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(blocker / "cache"))
    monkeypatch.setattr(numba.config, "CACHE_DIR", numba.config.CACHE_DIR)
    monkeypatch.setattr(numba.config, "CACHE_LOCATOR_CLASSES", numba.config.CACHE_LOCATOR_CLASSES)
    monkeypatch.setenv("NUMBA_CACHE_LOCATOR_CLASSES", os.environ["NUMBA_CACHE_LOCATOR_CLASSES"])
    path = jit_cache.configure(d)
    assert os.path.basename(path) == jit_cache.PREFIX + jit_cache.source_hash(d)
    assert os.path.isdir(path) and not path.startswith(str(blocker))
    # a folder named like the package in the temporary directory would shadow it for
    # any process started there
    assert os.path.basename(os.path.dirname(path)) != "parallel_vmc"
    assert numba.config.CACHE_DIR == path == os.environ["NUMBA_CACHE_DIR"]


def test_the_cache_is_never_written_into_the_package(tmp_path):
    """A cache folder inside site-packages/parallel_vmc survives `pip uninstall` and
    becomes a namespace package that shadows a later editable install."""
    assert jit_cache.cache_dir(PACKAGE, {"XDG_CACHE_HOME": str(tmp_path)}).startswith(
        str(tmp_path / "parallel_vmc")
    )
    home_default = jit_cache.cache_dir(PACKAGE, {})
    assert not os.path.abspath(home_default).startswith(os.path.abspath(PACKAGE))
    assert home_default.startswith(os.path.join(os.path.expanduser("~"), ".cache"))


def test_an_edit_changes_the_closure_keys_of_the_modules_above_it_only(tmp_path):
    """Per-closure keys: an edit of the training recompiles no VMC kernel, an edit of
    the RBM recompiles the kernels but not the determinants or the random numbers."""
    d = _copy_sources(tmp_path)
    before = jit_cache.closure_keys(d)
    assert set(before) == set(jit_cache.key_modules(d))
    with open(os.path.join(d, "generative/train.py"), "a") as fh:
        fh.write("\n# an edit\n")
    after = jit_cache.closure_keys(d)
    changed = {rel for rel in before if after[rel] != before[rel]}
    assert "generative/train.py" in changed
    assert not changed & {"sampling/kernels.py", "wavefunction/rbm.py", "rng.py"}
    with open(os.path.join(d, "wavefunction/rbm.py"), "a") as fh:
        fh.write("\n# an edit\n")
    again = jit_cache.closure_keys(d)
    changed = {rel for rel in after if again[rel] != after[rel]}
    assert {"wavefunction/rbm.py", "wavefunction/compose.py", "sampling/kernels.py"} <= changed
    assert not changed & {"wavefunction/pair_jastrow.py", "rng.py", "wavefunction/slater.py"}


def test_a_module_that_registers_into_the_generic_slot_is_in_the_kernels_closure(tmp_path):
    """The kernels reach a generic part through numba overloads its module registers
    and never import it: an edit to it (or a new such part, even one that compiles
    nothing itself) changes the kernels' keys, not the training's."""
    d = _copy_sources(tmp_path)
    before = jit_cache.closure_keys(d)
    with open(os.path.join(d, "wavefunction/relative_gaussian.py"), "a") as fh:
        fh.write("\n# an edit\n")
    after = jit_cache.closure_keys(d)
    changed = {rel for rel in before if after[rel] != before[rel]}
    assert {"sampling/kernels.py", "wavefunction/compose.py"} <= changed
    assert not changed & {"generative/train.py", "wavefunction/rbm.py"}
    _write(d, "wavefunction/new_part.py", "from . import generic\n\nX = 1\n")
    again = jit_cache.closure_keys(d)
    assert "wavefunction/new_part.py" in again
    assert again["sampling/kernels.py"] != after["sampling/kernels.py"]
    # without the declaration in generic.py, the importers are not followed
    path = os.path.join(d, "wavefunction/generic.py")
    with open(path) as fh:
        text = fh.read()
    with open(path, "w") as fh:
        fh.write(text.replace("EXTENDED_BY_IMPORTERS = True", "NOT_EXTENDED = True"))
    assert "wavefunction/new_part.py" not in jit_cache.closure_keys(d)


def test_package_kernels_are_cached_by_closure_and_other_functions_by_all_sources(tmp_path):
    from parallel_vmc.jit import locator
    from parallel_vmc.sampling import kernels

    keys = jit_cache.closure_keys(PACKAGE)
    base = os.path.dirname(numba.config.CACHE_DIR)
    expected = os.path.join(base, locator.CLOSURE_PREFIX + keys["sampling/kernels.py"])
    assert kernels.run_walkers._cache._cache_path.startswith(expected + os.sep)
    assert numba.config.CACHE_LOCATOR_CLASSES.split(",")[0].endswith("ClosureCacheLocator")
    # a function outside the package (a test's, a user's): numba's own locators, in the
    # directory keyed by every jitted source
    assert _libm_like._cache._cache_path.startswith(numba.config.CACHE_DIR + os.sep)


@numba.njit(cache=True)
def _libm_like(x):
    return x + 1.0


def test_locator_list_keeps_the_users_and_is_not_repeated():
    ours = "parallel_vmc.jit.locator.ClosureCacheLocator"
    default = jit_cache.locator_classes("")
    assert default.split(",") == [ours] + jit_cache.NUMBA_LOCATORS
    assert jit_cache.locator_classes(default) == default  # a child inherits it
    assert jit_cache.locator_classes("my.Locator") == ours + ",my.Locator"


def test_every_cache_names_its_data_files_by_key():
    """The package's kernels and other functions alike (numba creates the cache files
    through the class that the locator module installed)."""
    from parallel_vmc.jit.cache_file import KeyedCacheFile
    from parallel_vmc.sampling import kernels

    assert isinstance(kernels.run_walkers._cache._cache_file, KeyedCacheFile)
    assert isinstance(_libm_like._cache._cache_file, KeyedCacheFile)


_SAVER = """
import sys
from parallel_vmc.jit.cache_file import KeyedCacheFile
path, who = sys.argv[1], sys.argv[2]
for i in range(150):
    key = (who, i)
    KeyedCacheFile(path, "f", "stamp").save(key, ("code of", key))
"""


def test_processes_saving_other_signatures_at_once_never_mix_their_code(tmp_path):
    """Two processes add 150 signatures each to one function's cache at the same time
    (numba's own files let one signature's entry point at the other's code): every
    entry holds its own code, and none is lost (the index is updated under a lock)."""
    from parallel_vmc.jit.cache_file import KeyedCacheFile

    procs = [subprocess.Popen([sys.executable, "-c", _SAVER, str(tmp_path), who]) for who in "ab"]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    reader = KeyedCacheFile(str(tmp_path), "f", "stamp")
    for who in "ab":
        for i in range(150):
            assert reader.load((who, i)) == ("code of", (who, i))
    assert len(list(tmp_path.glob("f.*.nbc"))) == 300

"""numba's cache is keyed by every jitted module, so an edit of an inlined formula
outside kernels.py can never bring back a kernel compiled from the old one."""
import os
import shutil

import numba

import parallel_vmc
from parallel_vmc import jit_cache

PACKAGE = os.path.dirname(parallel_vmc.__file__)


def _copy_sources(tmp_path):
    for name in jit_cache.JIT_MODULES:
        shutil.copy(os.path.join(PACKAGE, name), tmp_path / name)
    return str(tmp_path)


def test_every_jitted_module_is_part_of_the_key(tmp_path):
    jitted = sorted(name for name in os.listdir(PACKAGE) if name.endswith(".py")
                    and "@njit" in open(os.path.join(PACKAGE, name)).read())
    assert jitted == sorted(jit_cache.JIT_MODULES)
    d = _copy_sources(tmp_path)
    env = {"NUMBA_CACHE_DIR": str(tmp_path / "base")}
    before = jit_cache.cache_dir(d, env)
    for name in jit_cache.JIT_MODULES:
        path = os.path.join(d, name)
        original = open(path).read()
        with open(path, "w") as fh:
            fh.write(original + "\n# edited\n")
        assert jit_cache.cache_dir(d, env) != before, name
        with open(path, "w") as fh:
            fh.write(original)
    assert jit_cache.cache_dir(d, env) == before


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
    path = jit_cache.configure(d)
    assert os.path.basename(path) == jit_cache.PREFIX + jit_cache.source_hash(d)
    assert os.path.isdir(path) and not path.startswith(str(blocker))
    assert numba.config.CACHE_DIR == path == os.environ["NUMBA_CACHE_DIR"]


def test_the_cache_is_never_written_into_the_package(tmp_path):
    """A cache folder inside site-packages/parallel_vmc survives `pip uninstall` and
    becomes a namespace package that shadows a later editable install."""
    assert jit_cache.cache_dir(PACKAGE, {"XDG_CACHE_HOME": str(tmp_path)}).startswith(
        str(tmp_path / "parallel_vmc"))
    home_default = jit_cache.cache_dir(PACKAGE, {})
    assert not os.path.abspath(home_default).startswith(os.path.abspath(PACKAGE))
    assert home_default.startswith(os.path.join(os.path.expanduser("~"), ".cache"))

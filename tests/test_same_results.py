"""Fixed-seed fingerprints of short runs: the summary energy and error, and a SHA-256 of
the whole ``production/local_energy`` series. A refactoring of the kernels must keep
them bit for bit; a change that alters them on purpose records the new ones in
``CURRENT`` (``RECORDED``: those taken before the wave function was split into parts,
issue 11) and says why in CHANGELOG.md, "Fingerprint history".

With other BLAS kernels than it was recorded with (``SR_BLAS``) the SR case compares the
summary energy and error to ``SR_RTOL`` relative.

Bit fingerprints hold on one floating-point platform: another libm (exp, log, cos) can
round differently in the last bit and flip an acceptance, and a CPU without FMA rounds
the kernel's multiply-adds twice. The platform is fingerprinted too
(``libm_fingerprint``); elsewhere the test is skipped with that reason.
"""

from __future__ import annotations

import copy
import hashlib
import pathlib

import h5py
import numpy as np
import pytest
from conftest import run_config
from numba import njit

from parallel_vmc.config.fields import parse_yaml
from parallel_vmc.config.vmc import from_dict

CONFIGS = pathlib.Path(__file__).resolve().parent.parent / "configs"
SHORT = {
    "sampler": {"thermalization": 200},
    "optimizer": {"iterations": 12, "samples_per_iteration": 4096},
    "production": {"samples": 16384},
}

CASES = {  # name: (config file, overrides)
    "quickstart": ("quickstart.yaml", {}),
    "dot2d_omega1.0": ("dot2d_omega1.0.yaml", {}),
    "gibbs": ("quickstart.yaml", {"sampler": {"method": "gibbs"}}),
    "metropolis": ("quickstart.yaml", {"sampler": {"method": "metropolis"}}),
    "sr": ("quickstart.yaml", {"optimizer": {"method": "sr", "learning_rate": 0.1}}),
    "pade_p3_d3_metropolis": (
        "dot2d_omega1.0.yaml",
        {
            "system": {"particles": 3, "dimensions": 3, "statistics": "bosons"},
            "sampler": {"method": "metropolis"},
        },
    ),
    "full_d1_importance": (
        "quickstart.yaml",
        {"system": {"dimensions": 1, "interaction": "none"}, "wavefunction": {"psi": "full"}},
    ),
}


def short_config(name: str, path) -> object:
    file, overrides = CASES[name]
    raw = parse_yaml((CONFIGS / file).read_text(), file)
    for section, values in list(SHORT.items()) + list(overrides.items()):
        raw.setdefault(section, {}).update(copy.deepcopy(values))
    raw["output"] = {"path": str(path)}
    return from_dict(raw)


@njit(cache=True)
def _libm_values():
    """exp, log, log1p, cos, sqrt of 4000 arguments, as the kernels call them."""
    out = np.empty(20000)
    for k in range(4000):
        t = -30.0 + 0.0151 * k
        out[5 * k] = np.exp(t)
        out[5 * k + 1] = np.log(1.0 + k * 0.37)
        out[5 * k + 2] = np.log1p(np.exp(t))
        out[5 * k + 3] = np.cos(t)
        out[5 * k + 4] = np.sqrt(k * 1.3)
    return out


@njit(cache=True, fastmath={"contract"})
def _fused(a, b, c):
    """a * b + c as the kernel compiles it: one rounding where the CPU has FMA."""
    return a * b + c


def libm_fingerprint() -> str:
    """The libm's values, plus whether the kernel's multiply-adds are fused here (a CPU
    without FMA rounds them twice: other bits)."""
    third = 1.0 / 3.0
    fused = _fused(third, 3.0, -1.0) != 0.0  # 3 * fl(1/3) - 1 exactly: -2^-54
    digest = hashlib.sha256(_libm_values().tobytes()).hexdigest()[:16]
    return digest if fused else digest + "-nofma"


def fingerprint(name: str, path) -> tuple:
    """(energy.hex(), error.hex(), sha256 of production/local_energy) of a short run."""
    result = run_config(short_config(name, path))
    with h5py.File(path, "r") as f:
        series = np.ascontiguousarray(f["production/local_energy"][...])
    return (
        float(result.summary["energy"]).hex(),
        float(result.summary["error"]).hex(),
        hashlib.sha256(series.tobytes()).hexdigest(),
    )


RECORDED = {  # at commit 591eaad, before the split
    "dot2d_omega1.0": (
        "0x1.806d7cef82a74p+1",
        "0x1.b98198f8f0e4ep-11",
        "7331fbada1c14bbaec9a9da743926daf9895c88bb02d49b7cb06067f4cbe6b80",
    ),
    "full_d1_importance": (
        "0x1.004ccea849729p+0",
        "0x1.d04a924c59e8ep-12",
        "5e123c210ec75ed28a4ccf3039c896f16c934a571d65e15969613047065b4bd3",
    ),
    "gibbs": (
        "0x1.9d92a183507fcp+1",
        "0x1.acd2e3645d2c5p-7",
        "37764965bb482d7659a08122ed8dfafc8062199f35bd36f65aba74c776098acb",
    ),
    "metropolis": (
        "0x1.9c6602dae9b14p+1",
        "0x1.e3bd9a946da38p-7",
        "b2d3f0a7362d38c4deb248b03a7641706ec2d5fb073c9c611c75e05c089f4b15",
    ),
    "pade_p3_d3_metropolis": (
        "0x1.a93bebf46042ap+2",
        "0x1.5b579e578c40fp-8",
        "c690eaaa8bca65f560b56460fc50a8c45d34758d2ec2578d5c20d7bc54b5fd99",
    ),
    "quickstart": (
        "0x1.9bd3ee4f1fad3p+1",
        "0x1.c7a313ada4b2dp-7",
        "5052a523b0cc517fad6d50710e4b77106de478f6faaf87ad6e90019ed5b24b64",
    ),
    "sr": (
        "0x1.8bcd9e19c211ep+1",
        "0x1.acde8752f93e4p-7",
        "6a4405cd6b2d50a6947aeade96e52e02ba20876cd0b330bfb46460a8d4c56784",
    ),
}


PLATFORM = "938c61fffafc9a80"  # libm_fingerprint() where RECORDED and CURRENT were taken

CURRENT = {  # since fused multiply-adds in the kernel (issue 16; history: CHANGELOG.md)
    "dot2d_omega1.0": (
        "0x1.80673d74a814ap+1",
        "0x1.b9f607b212f06p-11",
        "5ad271ac9a3ef6cc5322bbf102d4e8abd680ab3306120f304d021da7531c9d6f",
    ),
    "full_d1_importance": (
        "0x1.002b4654e8813p+0",
        "0x1.1054cc8e2bacfp-11",
        "5922f1d6f7f421b30baa0461b287cab6980c186bd485afcf2a56a81cc259dc6c",
    ),
    "gibbs": (
        "0x1.9996efa6b883cp+1",
        "0x1.82391a57edfb6p-7",
        "71ac5f011c8a39b8de40e4dab2adca2a3af3ca581cb66d4be980fbbd2b2f387e",
    ),
    "metropolis": (
        "0x1.9e9700e9ab445p+1",
        "0x1.0d3b0f89e7cdep-6",
        "6026d4f490e54195288c3782104ba28751a20cc7a31b61208e07345697ceedce",
    ),
    "pade_p3_d3_metropolis": (
        "0x1.a9677bc137148p+2",
        "0x1.ff57cf6fe83cbp-9",
        "2cc852386b68035bcc028c3900a4afc472c9346e0a31f428e6392e8669efff20",
    ),
    "quickstart": (
        "0x1.a6a0c3e8f9256p+1",
        "0x1.c2ac2044dd42ap-7",
        "6b8c7681852314430b7c8dffc414a15f0f6161f340dafadf0a1d58912c5783a2",
    ),
    "sr": (
        "0x1.8a74d82f49a96p+1",
        "0x1.767056070a43dp-7",
        "bf7a67269284e61ffa68a8b213d885cf34c6a3d3bacde1eb40a01e3545705906",
    ),
}


def blas_kernel() -> str:
    """'Haswell/2': the kernel family numpy's OpenBLAS chose on this CPU and its thread
    count (they fix the summation order of the SR case's O^T O); scipy's own BLAS,
    loaded too where numba multiplies matrices, is not the one numpy calls."""
    from threadpoolctl import threadpool_info

    blas = [
        i
        for i in threadpool_info()
        if i.get("user_api") == "blas" and "numpy" in str(i.get("filepath"))
    ]
    return ",".join(f"{i.get('architecture')}/{i.get('num_threads')}" for i in blas)


# The BLAS kernel family and thread count where CURRENT's SR case was taken. OpenBLAS
# sums O^T O in another order elsewhere: the same moves, the summary energy 6e-14 and
# its error 1.6e-13 relative from these (seen), so there the SR case compares those two
# to SR_RTOL (a changed formula moves them by 1e-6 or more) and not the series' hash.
SR_BLAS = "Haswell/2"
SR_RTOL = 1e-11


@pytest.mark.parametrize("name", sorted(CASES))
def test_same_bits_as_recorded(tmp_path, name):
    if libm_fingerprint() != PLATFORM:
        pytest.skip(
            f"fingerprints recorded on another floating-point platform (libm "
            f"{PLATFORM}, here {libm_fingerprint()})"
        )
    got, expected = fingerprint(name, tmp_path / "run.h5"), CURRENT[name]
    if name == "sr" and blas_kernel() != SR_BLAS:  # another summation order of O^T O
        for g, e in zip(got[:2], expected[:2]):
            assert float.fromhex(g) == pytest.approx(float.fromhex(e), rel=SR_RTOL)
        return
    assert got == expected

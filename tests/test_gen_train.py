"""Training (train.py): the closed-form gradient against the enumerated log-likelihood,
CD-k's bias shrinking with k, PCD's below CD-1's, and short trainings that learn."""

import numpy as np
import pytest

from parallel_vmc.generative import config as gconfig
from parallel_vmc.generative import datasets, evaluate, gibbs, train
from parallel_vmc.generative.model import RBM, visible_bias_from_mean, visible_mean
from parallel_vmc.parallel import SerialComm
from parallel_vmc.rng import chain_states


def small_rbm(seed=0, n_v=6, n_h=4, scale=1.0):
    rng = np.random.default_rng(seed)
    return RBM(
        "binary",
        0.5 * rng.normal(size=n_v),
        0.5 * rng.normal(size=n_h),
        scale * rng.normal(size=(n_v, n_h)),
    )


def small_data(n_v=6, rows=12, seed=1):
    return (np.random.default_rng(seed).random((rows, n_v)) < 0.4).astype(float)


def exact_negative(rbm):
    v, h, vh = evaluate.model_expectations(rbm)
    return np.concatenate([v, h, vh.ravel(), [1.0]])


def exact_gradient(rbm, data):
    return train.loglik_gradient(rbm, train.phase_sums(rbm, data), exact_negative(rbm))


def test_closed_form_gradient_equals_enumerated_loglik_derivative():
    rbm, data = small_rbm(), small_data()
    theta = rbm.theta()

    def loglik(t):
        return evaluate.log_likelihood(RBM.from_theta("binary", t, 6, 4), data)

    eps = 1e-5
    fd = np.array(
        [(loglik(theta + e) - loglik(theta - e)) / (2 * eps) for e in eps * np.eye(theta.size)]
    )
    g = exact_gradient(rbm, data)
    assert np.max(np.abs(g - fd)) < 1e-8 * max(1.0, np.max(np.abs(g)))


def test_gaussian_gradient_scaling_against_finite_differences_of_free_energy():
    """For gaussian, -dF/dtheta of one row gives the positive phase; the sums of
    phase_sums over that row, scaled by loglik_gradient, must equal it (the negative
    phase set to zero by giving the same row with weight 0 is not allowed, so compare
    the difference of two rows: the model phase cancels)."""
    from parallel_vmc.generative.model import free_energy

    rng = np.random.default_rng(3)
    rbm = RBM("gaussian", rng.normal(size=3), rng.normal(size=2), rng.normal(size=(3, 2)), 0.7)
    x, y = rng.normal(size=(1, 3)), rng.normal(size=(1, 3))
    g = train.loglik_gradient(rbm, train.phase_sums(rbm, x), train.phase_sums(rbm, y))
    theta, eps = rbm.theta(), 1e-6

    def diff(t):  # -F(x) + F(y): log p(x) - log p(y)
        r = RBM.from_theta("gaussian", t, 3, 2, 0.7)
        return float(free_energy(r, y)[0] - free_energy(r, x)[0])

    fd = np.array(
        [(diff(theta + e) - diff(theta - e)) / (2 * eps) for e in eps * np.eye(theta.size)]
    )
    assert np.allclose(g, fd, atol=1e-7)


def test_weight_decay_enters_only_the_weights():
    rbm, data = small_rbm(), small_data()
    total = np.concatenate([train.phase_sums(rbm, data), exact_negative(rbm)])
    plain = train.loss_gradient(rbm, total, 0.0)
    decayed = train.loss_gradient(rbm, total, 0.1)
    assert np.array_equal(plain[:10], decayed[:10])
    assert np.allclose(decayed[10:] - plain[10:], 0.1 * rbm.W.ravel())


def cd_error(rbm, data, k, copies, seed):
    """|CD-k gradient - exact| with `copies` chains per data row."""
    V = np.repeat(data, copies, axis=0)
    gibbs.sweeps(rbm, V, k, chain_states(seed, 0, len(V)))
    g = train.loglik_gradient(rbm, train.phase_sums(rbm, data), train.phase_sums(rbm, V))
    return float(np.linalg.norm(g - exact_gradient(rbm, data)))


def pcd_error(rbm, data, copies, seed):
    """|PCD-1 gradient - exact|: persistent chains that ran under the previous
    parameters (one small learning step before), then one sweep under the current."""
    previous = RBM.from_theta("binary", rbm.theta() - 0.01 * exact_gradient(rbm, data), 6, 4)
    V = np.repeat(data, copies, axis=0)
    states = chain_states(seed, 0, len(V))
    gibbs.sweeps(previous, V, 200, states)
    gibbs.sweeps(rbm, V, 1, states)
    g = train.loglik_gradient(rbm, train.phase_sums(rbm, data), train.phase_sums(rbm, V))
    return float(np.linalg.norm(g - exact_gradient(rbm, data)))


def test_cd_k_approaches_the_exact_gradient_and_pcd_beats_cd1(capsys):
    rbm, data = small_rbm(scale=1.5), small_data()
    copies = 2000  # 24000 chains: noise ~ 0.01 in the norm
    ks = (1, 2, 5, 10, 50)
    errors = [cd_error(rbm, data, k, copies, 11) for k in ks]
    pcd = pcd_error(rbm, data, copies, 12)
    norm = np.linalg.norm(exact_gradient(rbm, data))
    with capsys.disabled():
        print(f"\n|exact gradient| = {norm:.4f}")
        for k, e in zip(ks, errors):
            print(f"CD-{k:<3d} |g - g_exact| = {e:.4f}")
        print(f"PCD-1  |g - g_exact| = {pcd:.4f}")
    assert errors[0] > 0.1 * norm  # CD-1 is visibly biased here
    assert errors[0] > errors[1] > max(errors[2:])  # down to the noise floor
    assert errors[4] < 0.25 * errors[0]
    assert pcd < 0.5 * errors[0]


def tr_section(**keys):
    return gconfig.from_dict({"data": {"name": "bars_stripes"}, "training": keys}).training


@pytest.mark.parametrize("method,opt", [("pcd", "adam"), ("cd", "sgd")])
def test_short_training_on_bars_and_stripes_learns(method, opt):
    patterns, probs = datasets.bars_and_stripes(3)
    rbm = RBM.init("binary", 9, 16, np.random.default_rng(0))
    kl0 = evaluate.kl_divergence(rbm, patterns, probs)
    tr = tr_section(
        method=method,
        optimizer=opt,
        k=5,
        batch_size=14,
        epochs=1500,
        chains=200,
        learning_rate=0.02 if opt == "adam" else 0.2,
        momentum=0.5,
    )
    state = train.train(rbm, tr, patterns, 5, SerialComm())
    kl = evaluate.kl_divergence(RBM.from_theta("binary", state.theta, 9, 16), patterns, probs)
    assert state.epoch == 1500 and kl < 0.5 * kl0


@pytest.mark.parametrize("with_control", [False, True])
def test_one_allreduce_per_mini_batch(with_control):
    """Also with the stop flags of control.Control: they ride in the same buffer."""
    import math

    from parallel_vmc.control import Control

    comm = SerialComm()
    data = np.repeat(datasets.bars_and_stripes(2)[0], 5, axis=0)  # 30 rows
    tr = tr_section(batch_size=4, epochs=3, chains=8)
    control = Control(0, math.inf, None) if with_control else None
    train.train(
        RBM.init("binary", 4, 3, np.random.default_rng(0)), tr, data, 1, comm, control=control
    )
    assert comm.allreduce_calls == 3 * (30 // 4)


def test_layout_errors_name_the_key():
    tr = tr_section(batch_size=15, chains=9)
    with pytest.raises(train.TrainError, match="training.batch_size: 15 is larger"):
        train.check_layout(tr, 14, 1)
    with pytest.raises(train.TrainError, match="training.batch_size: 15 is not a multiple"):
        train.check_layout(tr, 100, 2)
    with pytest.raises(train.TrainError, match="training.chains: 9"):
        train.check_layout(tr_section(batch_size=4, chains=9), 100, 2)


def trained_evaluation(config, tmp_path):
    """Train a shipped config in-process; its /evaluation attributes."""
    import os

    import h5py

    from parallel_vmc.cli.main import main

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = tmp_path / "out.h5"
    assert main(["train", os.path.join(root, "configs", config), "-o", str(out), "--quiet"]) == 0
    with h5py.File(out, "r") as h5:
        return dict(h5["evaluation"].attrs)


@pytest.mark.slow
def test_bars3x3_pcd_reaches_kl_below_0_1(tmp_path):
    ev = trained_evaluation("train_bars3x3.yaml", tmp_path)
    print(f"3x3: KL {ev['kl']:.4f} nats in {ev['train_seconds']:.1f} s")
    assert ev["method"] == "exact" and ev["kl"] < 0.1


@pytest.mark.slow
def test_bars4x4_loglik_within_half_a_nat_of_the_optimum(tmp_path):
    ev = trained_evaluation("train_bars4x4.yaml", tmp_path)
    print(
        f"4x4: mean log-likelihood {ev['log_likelihood']:.4f} (optimum "
        f"{-np.log(30):.4f}) in {ev['train_seconds']:.1f} s"
    )
    assert ev["method"] == "exact" and ev["log_likelihood"] > -np.log(30) - 0.5


def test_gaussian_rbm_learns_the_2d_mixture():
    """Gaussian-binary, sigma fixed at the mixture's width: the exact held-out
    log-likelihood rises to near the mixture's own (about -2.14). The learning rate
    decays (cosine): at a constant 0.03 the final parameters still wander, and the
    held-out value ranged from -2.2 to -4.4 over six seeds (-2.14 .. -2.21 with the
    decay)."""
    data = datasets.gaussian_mixture(1000, 4)
    train_rows, held = data[:800], data[800:]
    rbm = RBM.init("gaussian", 2, 8, np.random.default_rng(0), 0.01, sigma=0.5)
    before = evaluate.log_likelihood(rbm, held)
    tr = tr_section(
        method="pcd",
        optimizer="adam",
        k=1,
        batch_size=20,
        epochs=200,
        chains=100,
        learning_rate=0.03,
        schedule="cosine",
        lr_final_fraction=0.05,
    )
    state = train.train(rbm, tr, train_rows, 7, SerialComm())
    after = evaluate.log_likelihood(RBM.from_theta("gaussian", state.theta, 2, 8, 0.5), held)
    print(f"mixture2d held-out LL: {before:.3f} -> {after:.3f}")
    assert after > -2.3 and after > before + 1.0


@pytest.mark.parametrize("n,batch,size", [(28, 4, 2), (1438, 10, 2), (30, 6, 3)])
def test_shards_partition_the_rows_and_batches_do_not_depend_on_the_ranks(n, batch, size):
    """Each rank holds the rows of its mini-batch positions: the shards of `size` ranks
    are disjoint, cover the data and are about n / size rows each; every epoch's
    global mini-batches (the ranks' parts side by side) are those of one rank, and no
    row appears twice in an epoch."""
    data = np.arange(n, dtype=np.float64)[:, None] * np.ones((1, 3))
    one = train.make_shard(data, batch, 5, 0, 1)
    shards = [train.make_shard(data, batch, 5, r, size) for r in range(size)]
    everyone = np.concatenate([s.index for s in shards])
    assert np.array_equal(np.sort(everyone), np.arange(n))
    assert all(abs(len(s.rows) - n / size) <= batch / size for s in shards)
    for s in shards:
        assert np.array_equal(s.rows[:, 0], s.index)  # the rows are the data's
    for epoch in (0, 3):
        whole = one.rows[train.epoch_rows(one, 9, epoch, batch), 0]
        parts = np.hstack([s.rows[train.epoch_rows(s, 9, epoch, batch), 0] for s in shards])
        assert whole.shape == (n // batch, batch) and np.array_equal(whole, parts)
        assert len(np.unique(whole)) == whole.size
    first, second = (one.rows[train.epoch_rows(one, 9, e, batch), 0] for e in (0, 1))
    assert not np.array_equal(first, second)  # a new order every epoch


def test_visible_bias_from_the_data_gives_the_data_mean_at_zero_weights():
    mean = np.array([0.0, 0.2, 0.5, 0.9, 1.0])
    a = visible_bias_from_mean("binary", mean)
    rbm = RBM("binary", a, np.zeros(2), np.zeros((5, 2)))
    assert np.allclose(
        visible_mean(rbm, np.zeros((1, 2)))[0], np.clip(mean, 1e-3, 1 - 1e-3), rtol=1e-12
    )
    assert np.array_equal(visible_bias_from_mean("gaussian", mean), mean)

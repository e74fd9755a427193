"""The one table of seed spawn keys (``rng.py``): every key has the value it had before
the table existed (so every stream is unchanged), and no two streams can share a key."""

import itertools

import numpy as np
import pytest

from parallel_vmc import rng as R

# name -> (value, how many indices follow it): the table as it must stay
EXPECTED = {
    "PARAMS_KEY": ((0,), 0),
    "SHUFFLE_KEY": ((0, 1), 1),  # + epoch
    "CHAIN_START_KEY": ((0, 2), 0),
    "LAYER_SEED_KEY": ((0, 3), 1),  # + layer
    "DATA_SAMPLE_KEY": ((0, 4), 0),
    "HELD_OUT_KEY": ((0, 5), 0),
    "PSEUDO_LIKELIHOOD_KEY": ((0, 6), 2),  # + epoch, rank
    "AIS_KEY": ((0, 7), 0),
    "DEAL_KEY": ((0, 9), 0),
    "DMC_COPY_KEY": ((0, 10), 0),
}


def test_the_table_holds_the_keys_used_so_far():
    table = {name for name in vars(R) if name.endswith("_KEY")}
    assert table == set(EXPECTED), "a key was added or removed: update EXPECTED and this test"
    for name, (value, _) in EXPECTED.items():
        assert getattr(R, name) == value, name
    assert R.CHAIN_KEY_BASE == 1


def can_collide(a, b) -> bool:
    """Can two key families (prefix, number of free indices >= 0) produce one key?
    Only if their keys have one length and the shorter prefix begins the longer."""
    (pa, na), (pb, nb) = a, b
    m = min(len(pa), len(pb))
    return len(pa) + na == len(pb) + nb and pa[:m] == pb[:m]


def test_no_two_streams_can_share_a_key():
    for (name_a, a), (name_b, b) in itertools.combinations(EXPECTED.items(), 2):
        assert not can_collide(a, b), (name_a, name_b)
    # the chains' keys (k + 1,) and (k + 1, r) begin with 1 or more; every other
    # family begins with a smaller number
    assert all(value[0] < R.CHAIN_KEY_BASE for value, _ in EXPECTED.values())
    chains = [R.chain_key(k, r) for k in range(50) for r in range(4)]
    assert len(set(chains)) == len(chains)
    assert all(key[0] >= R.CHAIN_KEY_BASE for key in chains)


def test_the_can_collide_check_finds_collisions():
    assert can_collide(((0,), 2), ((0, 6), 1))  # (0, 6, x) from both
    assert not can_collide(((0,), 0), ((0, 1), 1))  # lengths 1 and 3
    assert not can_collide(((0, 1), 1), ((0, 3), 1))


def state(seq: np.random.SeedSequence) -> list:
    return seq.generate_state(4).tolist()


@pytest.mark.parametrize("seed", [0, 7, 2026])
def test_every_stream_is_its_literal_key_of_before(seed):
    """Each user seeds from the key it spelled out before the table existed."""
    literal = lambda *key: state(np.random.SeedSequence(seed, spawn_key=key))  # noqa: E731
    assert state(R.seed_sequence(seed, R.SHUFFLE_KEY, 5)) == literal(0, 1, 5)
    assert state(R.seed_sequence(seed, R.LAYER_SEED_KEY, 2)) == literal(0, 3, 2)
    assert state(R.seed_sequence(seed, R.PSEUDO_LIKELIHOOD_KEY, 4, 1)) == literal(0, 6, 4, 1)
    for name in ("CHAIN_START_KEY", "DATA_SAMPLE_KEY", "HELD_OUT_KEY", "AIS_KEY", "DEAL_KEY"):
        assert state(R.seed_sequence(seed, getattr(R, name))) == literal(*EXPECTED[name][0])
    first = np.random.SeedSequence(seed, spawn_key=(4,)).generate_state(4, dtype=np.uint64)
    again = np.random.SeedSequence(seed, spawn_key=(4, 2)).generate_state(4, dtype=np.uint64)
    np.testing.assert_array_equal(R.chain_states(seed, 3, 1)[0], first)
    np.testing.assert_array_equal(R.chain_states(seed, 3, 1, reseed=2)[0], again)
    expected = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0,))).random(3)
    np.testing.assert_array_equal(R.params_generator(seed).random(3), expected)


def test_streams_match_values_recorded_before_the_table():
    """Numbers drawn with the code before the table (layout branch, e099765)."""
    from parallel_vmc.generative import runner, train

    assert R.params_generator(7).integers(0, 2**62) == 3679476056639351524
    assert R.chain_states(7, 3, 1)[0, 0] == 18326047321325575129
    assert R.chain_states(7, 3, 1, reseed=2)[0, 0] == 12699700241433379057
    assert runner.layer_seed(2026, 1) == 5877798437249347078
    shard = train.make_shard(np.arange(10.0).reshape(10, 1), 2, 5, 0, 1)
    assert shard.index.tolist() == [8, 3, 9, 1, 7, 4, 0, 6, 2, 5]
    assert train.epoch_rows(shard, 5, 3, 2).tolist() == [[0, 8], [3, 7], [4, 9], [2, 5], [1, 6]]

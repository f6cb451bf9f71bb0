import pytest

from ctdegradbench.builder.dataset.splits import assign_splits, check_fractions, split_sizes


def test_every_patient_in_exactly_one_split_and_deterministic():
    keys = [f"src/p{i}" for i in range(20)]
    a = assign_splits(keys, seed=3)
    assert set(a) == set(keys)
    assert set(a.values()) == {"train", "validation", "test"}
    assert a == assign_splits(list(reversed(keys)), seed=3)   # order of listing does not matter
    assert a != assign_splits(keys, seed=4)                    # the seed does


def test_sizes_follow_fractions_and_fill_small_splits():
    assert split_sizes(20, (0.7, 0.15, 0.15)) == [14, 3, 3]
    assert split_sizes(3, (0.7, 0.15, 0.15)) == [1, 1, 1]
    assert split_sizes(5, (0.7, 0.15, 0.15)) == [3, 1, 1]
    assert split_sizes(2, (0.7, 0.15, 0.15)) == [2, 0, 0]
    assert split_sizes(10, (1.0, 0.0, 0.0)) == [10, 0, 0]


@pytest.mark.parametrize("bad", [(0.5, 0.5), (0.5, 0.6, -0.1), (0.0, 0.5, 0.5), (0.7, 0.2, 0.2)])
def test_bad_fractions_raise(bad):
    with pytest.raises(ValueError, match="fractions"):
        check_fractions(bad)

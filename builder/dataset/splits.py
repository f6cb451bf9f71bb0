"""Patient-level train / validation / test split, deterministic (:data:`SPLIT_RULE`)."""

from __future__ import annotations

import hashlib

from ctdegradbench.builder.dataset.features import SPLITS
from ctdegradbench.builder.dataset.options import DEFAULT_FRACTIONS, check_fractions

SPLIT_RULE = (
    "No patient is in two splits: every slice of a patient goes where the patient goes. Patients are ordered by "
    "a seeded hash of their key (so the order does not depend on the order the source lists them in), then cut "
    "into consecutive groups whose sizes follow the fractions by the largest-remainder rule; when there are at "
    "least as many patients as splits with a positive fraction, every such split gets at least one patient (taken "
    "from the largest split). With fewer patients, the later splits stay empty and the build says so.")

def _rank(patient_key: str, seed: int) -> str:
    return hashlib.sha256(f"split/{seed}/{patient_key}".encode()).hexdigest()


def split_sizes(n_patients: int, fractions) -> list[int]:
    """Patients per split (largest remainder), with each positive-fraction split non-empty when possible."""
    fractions = check_fractions(fractions)
    exact = [f * n_patients for f in fractions]
    sizes = [int(e) for e in exact]
    by_remainder = sorted(range(3), key=lambda i: (exact[i] - sizes[i], -i), reverse=True)
    for i in by_remainder[: n_patients - sum(sizes)]:
        sizes[i] += 1
    wanted = [i for i in range(3) if fractions[i] > 0]
    if n_patients >= len(wanted):
        for i in wanted:
            if sizes[i] == 0:
                donor = max(range(3), key=lambda j: sizes[j])
                sizes[donor] -= 1
                sizes[i] += 1
    return sizes


def assign_splits(patient_keys, fractions=DEFAULT_FRACTIONS, seed: int = 0) -> dict[str, str]:
    """Map each distinct patient key to ``"train"``, ``"validation"`` or ``"test"``."""
    patients = sorted(set(patient_keys), key=lambda key: _rank(key, seed))
    sizes = split_sizes(len(patients), fractions)
    assignment, start = {}, 0
    for split, size in zip(SPLITS, sizes):
        for key in patients[start:start + size]:
            assignment[key] = split
        start += size
    return assignment


def split_slices(slices, fractions=DEFAULT_FRACTIONS, seed: int = 0) -> dict[str, list]:
    """The one place a build assigns reference slices to splits: the slices of each non-empty
    split, in source order, by patient (:func:`assign_splits` of their ``patient_key``). The
    local build decides it once and hands it to both of its builders; the Ray engine cuts its
    shards from it."""
    splits = assign_splits([s.patient_key for s in slices], fractions, seed)
    grouped = {split: [s for s in slices if splits[s.patient_key] == split] for split in SPLITS}
    return {split: group for split, group in grouped.items() if group}

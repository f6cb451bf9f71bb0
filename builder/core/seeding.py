"""Seeds and sample ids: every random draw of the simulator is seeded from its inputs.

There is no global random state anywhere in the simulator. A sample is named by

    ``sample_id = f"{reference_id}/{setting_code}/L{level}/r{realization}"``

and its random draws come from seeds derived by hashing, so they depend only on the
configuration seed, the sample id and the component's place in the mixture, never on the
order in which samples are generated or on which machine:

* sample seed    ``derive_seed(config_seed, sample_id)``
* component seed ``derive_seed(sample_seed, order, degradation_type)``
* mixture levels ``derive_seed(sample_seed, "levels")`` (the component severity draw)

``derive_seed(*parts)`` is the first 8 bytes of ``SHA-256(repr(parts))`` read as a big-endian
unsigned integer and shifted right by one bit, so it is a non-negative 63-bit integer: it
fits numpy's and torch's seeds and an ``int64`` metadata column. ``parts`` are plain ``int``
and ``str`` values (numpy integers are converted to ``int`` first, because their ``repr``
differs between numpy versions), which keeps the hash stable across Python, numpy and
platforms.
"""

from __future__ import annotations

import hashlib

import numpy as np

from ctdegradbench.core.errors import InputError

SEED_BITS = 63


def _plain(part):
    if isinstance(part, bool):
        raise ValueError(f"seed parts must be int or str, got the bool {part!r}")
    if isinstance(part, (int, np.integer)):
        return int(part)
    if isinstance(part, str):
        return part
    raise ValueError(f"seed parts must be int or str, got {type(part).__name__} {part!r}")


def derive_seed(*parts) -> int:
    """A non-negative 63-bit seed from ``parts`` (ints and strings), stable across platforms.

    ``int.from_bytes(sha256(repr(tuple(parts)).encode()).digest()[:8], "big") >> 1``.
    """
    if not parts:
        raise ValueError("derive_seed needs at least one part, got none")
    text = repr(tuple(_plain(p) for p in parts))
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") >> (64 - SEED_BITS)


def make_sample_id(reference_id: str, setting_code: str, level: int, realization: int) -> str:
    """``f"{reference_id}/{setting_code}/L{level}/r{realization}"``."""
    if not isinstance(realization, (int, np.integer)) or isinstance(realization, bool) or realization < 0:
        raise ValueError(f"realization must be a non-negative integer, got {realization!r}")
    return f"{reference_id}/{setting_code}/L{int(level)}/r{int(realization)}"


def parse_sample_id(sample_id: str) -> tuple[str, str, int, int]:
    """``(reference_id, setting_code, level, realization)`` of a :func:`make_sample_id` id."""
    parts = str(sample_id).split("/")
    level, realization = (parts[-2:] if len(parts) >= 4 else ("", ""))
    if not (level[:1] == "L" and level[1:].isdigit() and realization[:1] == "r" and realization[1:].isdigit()):
        raise InputError(f"sample id {sample_id!r} is not '<reference_id>/<setting>/L<level>/r<realization>'")
    return "/".join(parts[:-3]), parts[-3], int(level[1:]), int(realization[1:])


def sample_seed(config_seed: int, sample_id: str) -> int:
    """Seed of one sample: ``derive_seed(config_seed, sample_id)``."""
    return derive_seed(config_seed, sample_id)


def component_seed(seed_of_sample: int, order: int, degradation_type: str) -> int:
    """Seed of one component of a sample: ``derive_seed(sample_seed, order, type)``."""
    return derive_seed(seed_of_sample, order, degradation_type)


def levels_seed(seed_of_sample: int) -> int:
    """Seed of a mixture's component-severity draw: ``derive_seed(sample_seed, "levels")``."""
    return derive_seed(seed_of_sample, "levels")


def numpy_generator(seed: int) -> np.random.Generator:
    """``np.random.Generator(PCG64(seed))``: the generator every sampler draws from."""
    return np.random.Generator(np.random.PCG64(check_seed(seed)))


def torch_generator(seed: int, device) -> "torch.Generator":
    """A ``torch.Generator`` on ``device`` seeded with ``seed`` (same seed, device -> same draws)."""
    import torch

    generator = torch.Generator(device=torch.device(device))
    generator.manual_seed(check_seed(seed))
    return generator


def check_seed(seed) -> int:
    """Return ``seed`` as ``int`` if it is a non-negative integer below ``2**63``, else raise."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= int(seed) < 2 ** SEED_BITS:
        raise ValueError(f"seed must be an integer in [0, 2**{SEED_BITS}), got {seed!r}")
    return int(seed)

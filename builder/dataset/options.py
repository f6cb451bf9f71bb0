"""Build options: what ``ct-degradbench build`` / :func:`build_dataset` make and where.

:class:`BuildOptions` holds the source options, the simulation config and the build's own
options (output, configs, split, workers, cache, overwrite), each declared once with its
flag and help, and validates them all before any work starts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ctdegradbench.core.errors import OptionError
from ctdegradbench.core.options import check_declared, option
from ctdegradbench.builder.simulate.config import SimulationConfig
from ctdegradbench.builder.simulate.resolution import CALIBRATED_IMAGE_SIZE, MAX_PIXEL_SPACING_MM, check_image_size
from ctdegradbench.builder.simulate.settings import PAPER_SETTINGS, SETTINGS, get_setting
from ctdegradbench.builder.sources.options import SourceOptions

ALL_CONFIG = "all"
REFERENCES_CONFIG = "references"
DEFAULT_FRACTIONS: tuple[float, float, float] = (0.7, 0.15, 0.15)
ENGINES = ("local", "ray")   # local: datasets' builder on this machine; ray: references sharded over a Ray cluster
CONFIG_NAMES: tuple[str, ...] = tuple(s.config_name for s in SETTINGS) + (ALL_CONFIG,)


def settings_for(configs) -> tuple[str, ...]:
    """Setting codes of the requested config names (``all`` = the paper's ten), in table order."""
    if isinstance(configs, str):
        configs = [configs]
    codes = set()
    for name in configs:
        if name == ALL_CONFIG:
            codes.update(s.code for s in PAPER_SETTINGS)
        elif name in CONFIG_NAMES:
            codes.add(get_setting(name).code)
        else:
            raise OptionError(f"unknown config {name!r}; expected one or more of {', '.join(CONFIG_NAMES)}")
    return tuple(s.code for s in SETTINGS if s.code in codes)


def check_fractions(fractions) -> tuple[float, float, float]:
    """Validate ``(train, validation, test)`` patient fractions: three numbers >= 0, train > 0, sum 1."""
    try:
        values = tuple(float(f) for f in fractions)
    except (TypeError, ValueError):
        values = ()
    if len(values) != 3 or any(f < 0 for f in values) or abs(sum(values) - 1.0) > 1e-9 or values[0] == 0:
        raise OptionError(f"--split-fractions must be three numbers >= 0 (train > 0) summing to 1, got {fractions!r}")
    return values


@dataclass(frozen=True)
class BuildOptions:
    """Everything one build needs.

    Parameters
    ----------
    out : Path, default "ct-degradbench"
        Output folder (a Hub-style dataset folder; see :mod:`.export` for what may be replaced).
    configs : tuple of str, default ("all",)
        Configs to build: setting configs (``single_noise`` .. ``mixture_m5``, opt-in ones such as
        ``single_ring``) and ``all`` (the paper's ten settings).
    split_fractions : (float, float, float), default (0.7, 0.15, 0.15)
        Patient fractions of train / validation / test.
    num_proc : int or None
        Worker processes for the simulation (each with cores / N threads); pays off on
        many-core machines only. With ``engine="ray"`` and no ``address``: the CPUs of the
        Ray instance started on this machine (default: all its cores).
    engine : {"local", "ray"}, default "local"
        ``local``: the ``datasets`` builder on this machine; ``ray``: the references sharded
        over a Ray cluster (:mod:`.ray_engine`), same output bytes.
    address : str or None
        Ray cluster to run on (``auto``, ``HOST:PORT`` or ``ray://HOST:10001``); ``None``
        starts a Ray instance on this machine for the build. Only with ``engine="ray"``.
    shard_size : int, default 4
        Reference slices per Ray task: the unit that is redone after a failure and kept
        between runs; bounds each worker's memory (about 20 MB of output per 512 px
        reference and ten settings).
    cache_dir : Path or None
        ``datasets`` cache of the builder, kept after the build (default: ``.<out>.cache``
        beside the output, deleted once the export is complete).
    overwrite : bool
        Replace an existing export of ours (never another folder).
    allow_uncalibrated_grid : bool
        Simulate grids coarser than the severity levels' calibration (pixels above 1 mm or
        images below 256 px, :mod:`~ctdegradbench.builder.simulate.resolution`); the levels
        then lose their meaning. For quick pipeline tests only; the card says so.
    source : SourceOptions
    simulation : SimulationConfig or None
        ``None`` means ``SimulationConfig()``.
    """

    out: Path = option(Path("ct-degradbench"), "output folder", type=Path)
    configs: tuple[str, ...] = option((ALL_CONFIG,), f"configs to build: one or more of {', '.join(CONFIG_NAMES)}",
                                      many=True, metavar="CONFIG")
    split_fractions: tuple[float, float, float] = option(DEFAULT_FRACTIONS, "train / validation / test patient "
                                                         "fractions", cli=False)
    num_proc: int | None = option(None, none_means="1 (this process)",
                                  help="worker processes for the simulation, each with cores/N threads (for "
                                  "many-core machines); with --engine ray and no --address: the CPUs of the Ray "
                                  "instance started here", type=int, minimum=1)
    engine: str = option("local", "where the simulation runs: local (this machine, --num-proc workers) or ray (a "
                         "Ray cluster, see --address)", choices=ENGINES)
    address: str | None = option(None, "Ray cluster address for --engine ray (auto, HOST:PORT or ray://HOST:10001; "
                                 "default: start Ray on this machine with --num-proc CPUs)")
    shard_size: int = option(4, "reference slices per Ray task (--engine ray): the unit redone after a failure and "
                             "resumed from the cache", minimum=1)
    cache_dir: Path | None = option(None, "datasets cache of the builder, kept after the build (default: "
                                    ".<out>.cache beside the output, deleted when the export is complete)", type=Path)
    overwrite: bool = option(False, "replace an existing CT-DegradBench export in --out (never any other folder)")
    allow_uncalibrated_grid: bool = option(False, f"simulate pixels above {MAX_PIXEL_SPACING_MM:g} mm or images below "
                                           f"{CALIBRATED_IMAGE_SIZE} px (--image-size), where the severity levels "
                                           "lose their meaning (quick pipeline tests only)")
    source: SourceOptions = option(default_factory=SourceOptions, nested=SourceOptions)
    simulation: SimulationConfig | None = option(None, nested=SimulationConfig)   # None: the defaults

    def __post_init__(self) -> None:
        configs = (self.configs,) if isinstance(self.configs, str) else tuple(self.configs)
        if not configs:
            raise OptionError("--configs needs at least one config name, got none")
        settings_for(configs)
        object.__setattr__(self, "configs", configs)
        object.__setattr__(self, "out", Path(self.out))
        if self.cache_dir is not None:
            object.__setattr__(self, "cache_dir", Path(self.cache_dir))
        object.__setattr__(self, "split_fractions", check_fractions(self.split_fractions))
        check_declared(self)
        if self.address is not None and self.engine != "ray":
            raise OptionError(f"--address {self.address} is the Ray cluster of --engine ray; add --engine ray "
                              f"(the engine is {self.engine})")
        if self.address is not None and self.num_proc is not None:
            raise OptionError(f"--num-proc {self.num_proc} sizes a Ray instance started here; a cluster given with "
                              f"--address {self.address} has the CPUs its nodes were started with")
        if not isinstance(self.source, SourceOptions):
            raise OptionError(f"source must be a SourceOptions, got {type(self.source).__name__}")
        simulation = SimulationConfig() if self.simulation is None else self.simulation
        if not isinstance(simulation, SimulationConfig):
            raise OptionError(f"simulation must be a SimulationConfig, got {type(simulation).__name__}")
        object.__setattr__(self, "simulation", simulation)
        if not self.allow_uncalibrated_grid:
            check_image_size(self.source.image_size, where=f"--image-size {self.source.image_size}")

    @property
    def settings(self) -> tuple[str, ...]:
        """Setting codes the build simulates."""
        return settings_for(self.configs)

    @property
    def threads(self) -> int | None:
        """CPU threads per worker process: the cores divided among ``num_proc`` workers."""
        if self.num_proc is None or self.num_proc == 1 or self.engine != "local":
            return None
        return max(1, len(os.sched_getaffinity(0)) // self.num_proc)

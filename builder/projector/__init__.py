"""The parallel-beam projector: ``A`` (Radon transform), ``A.T`` and FBP, with a reference
backend in torch (``interp``) and a fast Fourier backend on the CPU (``nufft``)."""

from ctdegradbench.builder.projector.filters import FILTERS, filter_size, ramp_filter
from ctdegradbench.builder.projector.operator import BACKENDS, ParallelBeamProjector, resolve_backend

__all__ = ["BACKENDS", "FILTERS", "ParallelBeamProjector", "filter_size", "ramp_filter", "resolve_backend"]

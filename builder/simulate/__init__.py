"""Settings, mixtures, the simulator (reference -> degraded HU + metadata + prompt) and replay.

The simulator itself is :mod:`ctdegradbench.builder.simulate.simulator`."""

"""CT-DegradBench physics and data: projector, reference-CT sources, degradations, mixtures,
prompts, simulation, dataset features, export and Hub upload."""

"""Simulated samples as a Hugging Face dataset: features and rows, the ``datasets`` builder,
the patient-level split, the Parquet export with its card, verification and Hub upload."""

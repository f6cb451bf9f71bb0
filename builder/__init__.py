"""Physics and data of CT-DegradBench, read top-down in the order data flows::

    sources/       reference CT (DICOM, NIfTI, the default slices)  ->  ReferenceSlice (HU)
    projector/     HU -> mu -> parallel-beam sinogram, and filtered backprojection
    degradations/  the operators on the sinogram, one file each, and their registry
    simulate/      settings and mixtures, the Simulator (sinogram -> operators -> FBP -> HU),
                   metadata, prompts and exact replay
    dataset/       rows and features, the ``datasets`` builder, Parquet export, card,
                   verify and Hub upload
    cli.py         the ``build`` / ``sources`` / ``verify`` / ``push`` / ``figure`` commands
    core/          what every layer uses: errors, HU conventions, geometry, seeds, options

Imports only go downward in that list (``core`` is the bottom); nothing here imports
``ctdegradbench.model`` or ``ctdegradbench.evaluation``.
"""

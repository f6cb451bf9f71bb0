"""``ct-degradbench app``: start the web demo, or write it as a Hugging Face Space.

    ct-degradbench app [--results DIR] [--model DIR] [--image-size N] [--host H] [--port P]
    ct-degradbench app --write-space DIR [--requirement SPEC]

Its options are declared once (:class:`AppOptions`); Gradio (the ``[app]`` extra) is imported
only when the command runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ctdegradbench.core.errors import CTDegradBenchError, InputError
from ctdegradbench.core.options import check_declared, option
from ctdegradbench.model.app.core import DEMO_IMAGE_SIZE


@dataclass(frozen=True, kw_only=True)
class AppOptions:
    """``ct-degradbench app``."""

    results: Path | None = option(None, "results folder of `ct-degradbench bench iqa --out DIR` for the Benchmark "
                                  "tab", type=Path, metavar="DIR")
    model: Path | None = option(None, "SeSpeCT checkpoint folder", type=Path, none_means="the shipped one")
    image_size: int = option(DEMO_IMAGE_SIZE, "grid side in px of the Degrade tab's simulations (the dataset's is "
                             "512)", minimum=32, maximum=1024, unit=" px")
    host: str = option("127.0.0.1", "address to listen on (0.0.0.0 for all)")
    port: int = option(7860, "port", minimum=1, maximum=65535, unit=" (a TCP port)")
    write_space: Path | None = option(None, "write app.py, requirements.txt and README.md of a Hugging Face Space "
                                      "into DIR and exit", type=Path, metavar="DIR")
    requirement: str | None = option(None, "with --write-space: the requirements.txt line installing this package "
                                     "(a git+https URL works too)", metavar="SPEC",
                                     none_means="ct-degradbench[app]==<this version>")

    def __post_init__(self) -> None:
        check_declared(self)


def app(options: AppOptions) -> int:
    if options.write_space is not None:
        from ctdegradbench.model.app.space import write_space

        results = None if options.results is None else str(options.results)
        for path in write_space(options.write_space, options.requirement, results):
            print(f"wrote {path}")
        return 0
    if options.results is not None and not options.results.is_dir():
        raise InputError(f"--results {options.results}: not a folder; expected the --out folder of "
                         "`ct-degradbench bench iqa`")
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise CTDegradBenchError("the web demo needs Gradio: pip install 'ct-degradbench[app]'") from None
    from ctdegradbench.model.app import build_demo

    demo = build_demo(options.results, options.model, options.image_size)
    try:
        demo.launch(server_name=options.host, server_port=options.port)
    except OSError as err:       # the port is taken, or the host is not an address of this machine
        raise CTDegradBenchError(f"cannot serve the demo on {options.host}:{options.port}: {err}") from None
    return 0

"""``ct-degradbench app``: start the web demo, or write it as a Hugging Face Space.

    ct-degradbench app [--results DIR] [--model DIR] [--image-size N] [--host H] [--port P]
    ct-degradbench app --write-space DIR [--requirement SPEC]

Gradio (the ``[app]`` extra) is imported only when the command runs.
"""

from __future__ import annotations

from pathlib import Path

from ctdegradbench.core.errors import CTDegradBenchError, InputError
from ctdegradbench.model.cli import int_in_range


_image_size = int_in_range(32, 1024, " px")
_port = int_in_range(1, 65535, " (a TCP port)")


def add_commands(sub, active: str | None = None, argv=()) -> None:
    """Register ``app`` on ``sub`` (an argparse sub-parsers object)."""
    from ctdegradbench.model.app.core import DEMO_IMAGE_SIZE

    p = sub.add_parser("app", help="web demo (Gradio): inspect, degrade, benchmark results",
                       description="Start the CT-DegradBench web demo (needs the [app] extra: pip install "
                                   "'ct-degradbench[app]'): Inspect (SeSpeCT's answer for an uploaded CT), Degrade "
                                   "(the simulator on the default reference CT or the upload) and Benchmark (tables "
                                   "and figures of a `bench iqa` results folder). --write-space writes it as a "
                                   "Hugging Face Space instead.")
    p.set_defaults(func=_cmd_app)
    p.add_argument("--results", type=Path, default=None, metavar="DIR",
                   help="results folder of `ct-degradbench bench iqa --out DIR` for the Benchmark tab")
    p.add_argument("--model", type=Path, default=None, help="SeSpeCT checkpoint folder (default: the shipped one)")
    p.add_argument("--image-size", type=_image_size, default=DEMO_IMAGE_SIZE,
                   help=f"grid side in px of the Degrade tab's simulations (default {DEMO_IMAGE_SIZE}; the dataset's "
                        "is 512)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 for all)")
    p.add_argument("--port", type=_port, default=7860, help="port, 1..65535 (default 7860)")
    p.add_argument("--write-space", type=Path, default=None, metavar="DIR",
                   help="write app.py, requirements.txt and README.md of a Hugging Face Space into DIR and exit")
    p.add_argument("--requirement", default=None, metavar="SPEC",
                   help="with --write-space: the requirements.txt line installing this package (default "
                        "ct-degradbench[app]==<this version>; a git+https URL works too)")


def _cmd_app(args) -> int:
    if args.write_space is not None:
        from ctdegradbench.model.app.space import write_space

        results = None if args.results is None else str(args.results)
        for path in write_space(args.write_space, args.requirement, results):
            print(f"wrote {path}")
        return 0
    if args.results is not None and not args.results.is_dir():
        raise InputError(f"--results {args.results}: not a folder; expected the --out folder of "
                         "`ct-degradbench bench iqa`")
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise CTDegradBenchError("the web demo needs Gradio: pip install 'ct-degradbench[app]'") from None
    from ctdegradbench.model.app import build_demo

    demo = build_demo(args.results, args.model, args.image_size)
    try:
        demo.launch(server_name=args.host, server_port=args.port)
    except OSError as err:       # the port is taken, or the host is not an address of this machine
        raise CTDegradBenchError(f"cannot serve the demo on {args.host}:{args.port}: {err}") from None
    return 0

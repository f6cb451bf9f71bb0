"""``ct-degradbench app``: a Gradio web demo of the benchmark and of SeSpeCT (optional extra ``[app]``).

Tabs: **Inspect** (upload a CT slice, see SeSpeCT's answer), **Degrade** (simulate a setting and
level on the default reference CT or the upload) and **Benchmark** (the tables and figures of a
``bench iqa`` results folder). ``core`` holds the work (no Gradio), ``ui`` the page, ``space``
the Hugging Face Space writer and ``cli`` the command. Gradio is imported only by ``ui``.
"""

from __future__ import annotations

__all__ = ["build_demo"]



def build_demo(*args, **kwargs):
    """The Gradio ``Blocks`` of the demo (see :func:`ctdegradbench.model.app.ui.build_demo`)."""
    from ctdegradbench.model.app.ui import build_demo as build

    return build(*args, **kwargs)

"""A Hugging Face Space running the demo: ``app.py`` (the entry the Space's Gradio runtime starts)
and ``requirements.txt`` (what the Space installs), written into a folder."""

from __future__ import annotations

from pathlib import Path

from ctdegradbench.core.errors import OptionError
from ctdegradbench.core.version import version

SPACE_APP = '''\
"""CT-DegradBench demo as a Hugging Face Space (written by `ct-degradbench app --write-space`)."""
from ctdegradbench.model.app import build_demo

demo = build_demo({results})

if __name__ == "__main__":
    demo.launch()
'''

SPACE_README = '''\
---
title: CT-DegradBench demo
sdk: gradio
app_file: app.py
---
Inspect a CT slice with SeSpeCT, degrade a slice with the CT-DegradBench simulator{benchmark}.
'''


def package_requirement() -> str:
    """``ct-degradbench[app]==<installed version>``: what the Space installs."""
    return f"ct-degradbench[app]=={version()}"


def write_space(folder, requirement: str | None = None, results: str | None = None) -> list[Path]:
    """Write ``app.py``, ``requirements.txt`` and ``README.md`` (the Space's card) into ``folder``.

    ``requirement``: the pip line installing the package (default :func:`package_requirement`; a
    ``git+https://...`` URL works too). ``results``: a results folder path *inside the Space* for
    the Benchmark tab. Existing files are never overwritten (one error line names them).
    """
    folder = Path(folder)
    files = {
        "app.py": SPACE_APP.format(results="" if results is None else f"results={str(results)!r}"),
        "requirements.txt": (requirement or package_requirement()) + "\n",
        "README.md": SPACE_README.format(benchmark="" if results is None else ", browse benchmark results"),
    }
    existing = [name for name in files if (folder / name).exists()]
    if existing:
        raise OptionError(f"--write-space {folder}: {', '.join(existing)} already there; choose an empty folder "
                          "(files are never overwritten)")
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
        written.append(folder / name)
    return written

"""May a command write this output? The one ownership rule of every command that writes.

Nothing of a user's is ever replaced. What proves that something is ours:

- a folder written by ``train`` / ``bench iqa|drift`` carries :data:`FOLDER_MARKER`, a JSON file
  listing the command and every file it wrote there; such a folder is reused (files it lists are
  replaced, anything else in it is left alone and never replaced);
- a dataset export carries its manifest (``builder.dataset.export``, same rule);
- a single file (``evaluate --out`` / ``--predictions``, ``bench tasks --out``, ``sources
  --preview``, ``figure --out``) is ours when it carries :data:`GENERATOR`: a JSON object (or
  the first row of a JSON-lines file) with the key ``"generator"``, a PNG with the text chunk
  ``Software`` (written by ``core.plotting.save_png``).

The current directory, its ancestors, the home folder and ``/`` are never output folders.
Files are written atomically (a temporary sibling renamed into place), and every writer
returns what it wrote so that the command can say so. This module imports nothing heavy.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from ctdegradbench.core.errors import OutputError

GENERATOR = "ct-degradbench"
FOLDER_MARKER = ".ct-degradbench-output.json"   # in an output folder of ours: command and files written


def protected_reason(path: Path) -> str | None:
    """Why ``path`` may never be an output folder (``None`` when it may be)."""
    resolved, cwd = Path(path).resolve(), Path.cwd().resolve()
    if resolved == Path(resolved.anchor):
        return "is the file-system root"
    if resolved == Path.home().resolve():
        return "is your home folder"
    if resolved == cwd:
        return "is the current directory"
    if cwd.is_relative_to(resolved):
        return f"holds the current directory {cwd}"
    return None


def _oserror(exc: OSError, where) -> OutputError:
    import errno

    what = "the disk is full" if exc.errno == errno.ENOSPC else (exc.strerror or str(exc))
    return OutputError(f"cannot write {exc.filename or where}: {what}")


def is_ours(path: Path) -> bool:
    """Whether the existing file ``path`` was written by CT-DegradBench (see the module notes)."""
    path = Path(path)
    try:
        if path.suffix.lower() in (".json", ".jsonl"):          # JSON lines: the first row carries the mark
            with path.open(encoding="utf-8") as handle:
                text = handle.read() if path.suffix.lower() == ".json" else handle.readline()
            data = json.loads(text)
            return isinstance(data, dict) and str(data.get("generator", "")).startswith(GENERATOR)
        if path.suffix.lower() == ".png":
            from PIL import Image

            with Image.open(path) as img:
                return str(getattr(img, "text", {}).get("Software", "")).startswith(GENERATOR)
    except Exception:       # unreadable, not JSON, not a PNG: not provably ours
        return False
    return False


def check_file_output(path: Path, option: str = "--out") -> Path:
    """Raise OutputError unless the file ``path`` may be written: it does not exist, or it is ours.

    Returns ``path``. Call it before any work so that a refusal costs nothing.
    """
    path = Path(path)
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise OutputError(f"{option} {path} exists and is not a plain file; choose another {option}")
    if path.exists() and not is_ours(path):
        raise OutputError(f"{option} {path} exists and was not written by ct-degradbench; refusing to replace it: "
                          f"move it away or choose another {option}")
    parent = path.parent
    if parent.exists() and not os.access(parent, os.W_OK):
        raise OutputError(f"cannot write {option} {path}: the folder {parent} is read-only")
    return path


def replace_atomically(path: Path, write) -> Path:
    """Call ``write(tmp)`` on a temporary sibling of ``path``, then rename it to ``path``.

    Nothing is left behind on failure (an unwritable place, a full disk): OutputError names
    the path.
    """
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent)
        os.close(fd)
        tmp = Path(name)
        write(tmp)
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        raise _oserror(exc, path) from None
    finally:
        if tmp is not None:
            try:
                tmp.unlink(missing_ok=True)
            except OSError:
                pass
    return path


def write_json_output(path: Path, data: dict, option: str = "--out") -> Path:
    """Write the dict ``data`` (with ``"generator"`` added) as JSON to ``path`` if it may be written."""
    check_file_output(path, option)
    text = json.dumps({"generator": GENERATOR, **data}, indent=1, default=float) + "\n"
    return replace_atomically(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


class OutputFolder:
    """An output folder of one command, claimed under the ownership rule (module notes).

    ``OutputFolder(path, "train")`` raises OutputError when ``path`` is protected, is not a
    folder, or holds files while carrying no :data:`FOLDER_MARKER` of ours. :meth:`may_write`
    refuses a file that exists and was not written by us; :meth:`commit` moves a staged tree
    into the folder; :attr:`written` lists what this run wrote.
    """

    def __init__(self, path, command: str, option: str = "--out"):
        self.path, self.command, self.option = Path(path), command, option
        self.written: list[str] = []
        reason = protected_reason(self.path)
        if reason:
            raise OutputError(f"{option} {self.path} {reason}; write into a folder of its own")
        if self.path.is_symlink() or (self.path.exists() and not self.path.is_dir()):
            raise OutputError(f"{option} {self.path} exists and is not a folder; choose another {option}")
        self.owned = self._read_marker()
        if self.path.is_dir() and self.owned is None and any(self.path.iterdir()):
            raise OutputError(f"{option} {self.path} already holds files that ct-degradbench did not write (no "
                              f"{FOLDER_MARKER}); refusing to write there: choose a new or empty folder")
        if self.path.is_dir() and not os.access(self.path, os.W_OK):
            raise OutputError(f"cannot write {option} {self.path}: the folder is read-only")
        self.owned = set(self.owned or ())

    def _read_marker(self) -> list | None:
        marker = self.path / FOLDER_MARKER
        if not marker.is_file():
            return None
        try:
            data = json.loads(marker.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        files = data.get("files") if isinstance(data, dict) else None
        return [f for f in files if isinstance(f, str)] if isinstance(files, list) else None

    def may_write(self, rel: str) -> None:
        """Raise OutputError if ``rel`` (relative to the folder) exists and is not ours."""
        target = self.path / rel
        if (target.exists() or target.is_symlink()) and rel not in self.owned:
            raise OutputError(f"{target} exists and was not written by ct-degradbench {self.command}; refusing to "
                              f"replace it: move it away or choose another {self.option}")

    def _save_marker(self) -> None:
        data = {"generator": GENERATOR, "command": self.command, "files": sorted(self.owned)}
        text = json.dumps(data, indent=1) + "\n"
        replace_atomically(self.path / FOLDER_MARKER, lambda tmp: tmp.write_text(text, encoding="utf-8"))

    def open(self) -> "OutputFolder":
        """Create the folder (and its marker) before work starts."""
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _oserror(exc, self.path) from None
        self._save_marker()
        return self

    def record(self, rel: str) -> None:
        self.owned.add(rel)
        if rel not in self.written:
            self.written.append(rel)
        self._save_marker()

    def write_json(self, rel: str, data) -> Path:
        """Write ``data`` as JSON to ``rel`` atomically (refused if it exists and is not ours)."""
        self.may_write(rel)
        text = json.dumps(data, indent=1, allow_nan=True, default=float)
        self.record(rel)
        return replace_atomically(self.path / rel, lambda tmp: tmp.write_text(text, encoding="utf-8"))

    def staging(self) -> Path:
        """A fresh hidden folder inside the output to write into; :meth:`commit` moves its files."""
        self.open()
        try:
            return Path(tempfile.mkdtemp(prefix=".staging-", dir=self.path))
        except OSError as exc:
            raise _oserror(exc, self.path) from None

    def commit(self, staged: Path) -> list[str]:
        """Move every file of ``staged`` to the same place in the folder, after checking that
        none of them would replace a file of the user's; remove ``staged``. Returns the files."""
        staged = Path(staged)
        try:
            files = sorted(str(p.relative_to(staged)) for p in staged.rglob("*") if p.is_file())
            for rel in files:
                self.may_write(rel)
            for rel in files:
                target = self.path / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                self.owned.add(rel)
                os.replace(staged / rel, target)
                if rel not in self.written:
                    self.written.append(rel)
            self._save_marker()
        except OSError as exc:
            raise _oserror(exc, self.path) from None
        finally:
            shutil.rmtree(staged, ignore_errors=True)
        return files

    def summary(self) -> str:
        """``wrote DIR: a, b, c`` (the files this run wrote; for a folder opened afresh, every file
        its marker lists)."""
        files = self.written or sorted(self.owned)
        shown = ", ".join(files[:8]) + (f" and {len(files) - 8} more" if len(files) > 8 else "")
        return f"wrote {self.path}: {shown or 'nothing'}"

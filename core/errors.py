"""The project's exceptions: one base for every problem a user can fix.

The ``ct-degradbench`` command prints a :class:`CTDegradBenchError` as one line and exits
with status 2; any other exception (a bug, running out of memory) keeps its traceback.
Each subclass also derives from the built-in exception that describes it, so library
callers can catch ``ValueError`` / ``FileNotFoundError`` as usual.
"""

from __future__ import annotations


class CTDegradBenchError(Exception):
    """A problem the user can fix (bad option, bad input, unwritable output, ...)."""


class OptionError(CTDegradBenchError, ValueError):
    """An option outside its valid range or set; the message names the value and what was expected."""


class InputError(CTDegradBenchError, ValueError):
    """Input data that cannot be used (a source without CT, a folder that is not an export, ...)."""


class InputNotFoundError(CTDegradBenchError, FileNotFoundError):
    """An input path that does not exist."""


class OutputError(CTDegradBenchError, RuntimeError):
    """An output that cannot be written (existing folder, unwritable place, full disk, ...)."""


class RemoteError(CTDegradBenchError, RuntimeError):
    """A remote service (the Hugging Face Hub) that cannot be reached or refused a request."""

"""Typed options declared once: a dataclass field carries its default, its help text and its
command-line flag, so the CLI, the Python API and the ``datasets`` builder config share one
declaration and one validation (the dataclass's ``__post_init__``).

>>> from dataclasses import dataclass
>>> @dataclass(frozen=True)
... class Demo:
...     stride: int = option(1, "keep every N-th slice", minimum=1)
>>> import argparse
>>> parser = argparse.ArgumentParser()
>>> add_arguments(parser, Demo)
>>> from_args(Demo, parser.parse_args(["--stride", "4"]))
Demo(stride=4)
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from typing import Any

from ctdegradbench.core.errors import OptionError

_MISSING = dataclasses.MISSING


def option(default=_MISSING, help: str = "", *, default_factory=_MISSING, flag: str | None = None,
           type: Any = None, choices=None, minimum=None, maximum=None, repeat: bool = False, many: bool = False,
           cli: bool = True, metavar: str | None = None, none_means: str | None = None):
    """A dataclass field with command-line metadata.

    Parameters
    ----------
    default, default_factory
        As for :func:`dataclasses.field`.
    help : str
        One line for ``--help`` (the default and the range are appended automatically).
    flag : str or None
        The option string; default ``--`` + the field name with ``-`` for ``_``.
    type : callable or None
        Converts the command-line text; default: the type of ``default``.
    choices : sequence or None
        Allowed values (checked by :func:`check_choice` in the dataclass's validation too).
    minimum, maximum : number or None
        Documented range (checked by :func:`check_number`).
    repeat : bool
        The flag may be given several times (collected into a tuple).
    many : bool
        The flag takes one or more values (``--configs a b``), collected into a tuple.
    cli : bool
        Whether the field is a command-line option at all.
    none_means : str or None
        What a ``None`` default does, shown as the default in ``--help`` (e.g. "every slice").
    """
    metadata = {"help": help, "flag": flag, "type": type, "choices": choices, "minimum": minimum,
                "maximum": maximum, "repeat": repeat, "many": many, "cli": cli, "metavar": metavar,
                "none_means": none_means}
    if default_factory is not _MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def flag_of(cls, name: str) -> str:
    """The command-line flag of field ``name`` of ``cls`` (how errors name an option)."""
    for f in dataclasses.fields(cls):
        if f.name == name:
            return f.metadata.get("flag") or "--" + name.replace("_", "-")
    raise KeyError(name)


def _default(f: dataclasses.Field):
    return f.default_factory() if f.default_factory is not _MISSING else f.default


def _help(f: dataclasses.Field) -> str:
    meta = f.metadata
    parts = [meta["help"]]
    lo, hi = meta.get("minimum"), meta.get("maximum")
    if lo is not None or hi is not None:
        parts.append(f"range {'' if lo is None else lo}..{'' if hi is None else hi}")
    default = _default(f)
    if "(default" in meta["help"] or "default:" in meta["help"] or default is False:   # stated, or an off flag
        pass
    elif default is None:
        parts.append(f"default: {meta.get('none_means') or 'none'}")
    else:   # 0 and 0.0 are defaults too; strings quoted, so that the source 'default' reads as a name
        values = default if isinstance(default, tuple) else (default,)
        parts.append("default: " + " ".join(repr(v) if isinstance(v, str) else str(v) for v in values))
    text = "; ".join(p for p in parts if p)
    return text.replace("%", "%%")


def add_arguments(parser: argparse.ArgumentParser, cls, *, exclude=()) -> None:
    """Add a flag for every command-line field of the dataclass ``cls`` (except ``exclude``)."""
    for f in dataclasses.fields(cls):
        meta = f.metadata
        if not meta.get("cli") or f.name in exclude:
            continue
        default = _default(f)
        kwargs = {"dest": f.name, "help": _help(f), "default": argparse.SUPPRESS}
        if meta.get("metavar"):
            kwargs["metavar"] = meta["metavar"]
        if isinstance(default, bool) and meta.get("type") is None:
            kwargs["action"] = "store_true"
        else:
            convert = meta.get("type") or (type(default[0]) if isinstance(default, tuple) and default
                                          else type(default) if default is not None else str)
            kwargs["type"] = convert
            if meta.get("choices") is not None:
                kwargs["choices"] = list(meta["choices"])
            if meta.get("repeat"):
                kwargs["action"] = "append"
            if meta.get("many"):
                kwargs["nargs"] = "+"
        parser.add_argument(meta.get("flag") or "--" + f.name.replace("_", "-"), **kwargs)


def from_args(cls, args: argparse.Namespace, **overrides):
    """An instance of ``cls`` from the parsed flags (absent flags keep the dataclass defaults)."""
    values = {}
    for f in dataclasses.fields(cls):
        if f.metadata.get("cli") and hasattr(args, f.name):
            value = getattr(args, f.name)
            values[f.name] = tuple(value) if f.metadata.get("repeat") or f.metadata.get("many") else value
    values.update(overrides)
    return cls(**values)


# ------------------------------------------------------------------ checks
def check_int(cls, name: str, value, *, minimum=None, allow_none: bool = False) -> int | None:
    """``value`` as int if it is an integer (not a bool) >= ``minimum``; OptionError naming the flag otherwise."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or (minimum is not None and value < minimum):
        expected = "an integer" + ("" if minimum is None else f" >= {minimum}") + (" or nothing" if allow_none else "")
        raise OptionError(f"{flag_of(cls, name)} must be {expected}, got {value!r}")
    return int(value)


def check_number(cls, name: str, value, *, minimum=None, maximum=None, above=None, below=None) -> float:
    """``value`` as float if finite and inside the bounds (inclusive ``minimum``/``maximum``,
    exclusive ``above``/``below``); OptionError naming the flag otherwise."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (minimum is None or value >= minimum) and (maximum is None or value <= maximum)
    ok = ok and (above is None or value > above) and (below is None or value < below)
    if not ok:
        bounds = [f">= {minimum}" if minimum is not None else "", f"> {above}" if above is not None else "",
                  f"<= {maximum}" if maximum is not None else "", f"< {below}" if below is not None else ""]
        raise OptionError(f"{flag_of(cls, name)} must be a finite number {' and '.join(b for b in bounds if b)}, "
                          f"got {value!r}".replace("number  ,", "number,"))
    return float(value)


def check_choice(cls, name: str, value, choices) -> Any:
    """``value`` if it is one of ``choices``; OptionError naming the flag and the choices otherwise."""
    if value not in tuple(choices):
        raise OptionError(f"{flag_of(cls, name)} must be one of {', '.join(map(str, choices))}; got {value!r}")
    return value

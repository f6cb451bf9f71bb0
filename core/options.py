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
           type: Any = None, choices=None, minimum=None, maximum=None, above=None, below=None, unit: str = "",
           repeat: bool = False, many: bool = False, nargs=None, positional: bool = False, group: str | None = None,
           nested=None, negate: bool = False, cli: bool = True, metavar=None, none_means: str | None = None):
    """A dataclass field with command-line metadata: declared once, it gives the flag, its help
    (default and range appended), its parse-time conversion and the dataclass's checks
    (:func:`check_declared`).

    Parameters
    ----------
    default, default_factory
        As for :func:`dataclasses.field`; neither: the option is required (use ``kw_only`` dataclasses).
    help : str
        One line for ``--help`` (the default and the range are appended automatically).
    flag : str or None
        The option string; default ``--`` + the field name with ``-`` for ``_``.
    type : callable or None
        Converts the command-line text; default: the type of ``default``.
    choices : sequence or None
        Allowed values.
    minimum, maximum, above, below : number or None
        Inclusive (``minimum``, ``maximum``) and exclusive (``above``, ``below``) bounds of a
        number; ``unit`` follows the range in messages (e.g. ``" px"``).
    repeat : bool
        The flag may be given several times (collected into a tuple).
    many : bool
        The flag takes one or more values (``--configs a b``), collected into a tuple.
    nargs : int or str or None
        An argparse ``nargs`` other than ``many`` (``2``, ``"*"``, ``"?"``).
    positional : bool
        A positional argument (the field name is its name in the usage).
    group : str or None
        Options of the same group are mutually exclusive.
    nested : class or None
        The field holds another option dataclass, whose flags are this command's flags too.
    negate : bool
        A ``True`` default that the flag turns off (``--no-figures`` for ``figures``).
    cli : bool
        Whether the field is a command-line option at all.
    none_means : str or None
        What a ``None`` default does, shown as the default in ``--help`` (e.g. "every slice").
    """
    metadata = {"help": help, "flag": flag, "type": type, "choices": choices, "minimum": minimum,
                "maximum": maximum, "above": above, "below": below, "unit": unit, "repeat": repeat, "many": many,
                "nargs": nargs, "positional": positional, "group": group, "nested": nested, "negate": negate, "cli": cli,
                "metavar": metavar, "none_means": none_means}
    if default_factory is not _MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def flag_of(cls, name: str) -> str:
    """The command-line flag of field ``name`` of ``cls`` (how errors name an option)."""
    for f in dataclasses.fields(cls):
        if f.name == name:
            return f.metadata.get("flag") or ("" if f.metadata.get("positional") else "--") + name.replace("_", "-")
    raise KeyError(name)


def _default(f: dataclasses.Field):
    return f.default_factory() if f.default_factory is not _MISSING else f.default


def _bounds(meta) -> str:
    """``"0..1"``, ``">= 1"``, ``"> 0 and <= 1"``: the declared range of a number ('' without one)."""
    lo, hi, above, below = (meta.get(k) for k in ("minimum", "maximum", "above", "below"))
    if above is None and below is None and lo is not None and hi is not None:
        return f"{lo}..{hi}"
    parts = [f">= {lo}" if lo is not None else "", f"> {above}" if above is not None else "",
             f"<= {hi}" if hi is not None else "", f"< {below}" if below is not None else ""]
    return " and ".join(p for p in parts if p)


def _expected(meta, integer: bool) -> str:
    """What a value must be, for messages: ``"an integer in 1..65535 (a TCP port)"``."""
    bounds = _bounds(meta)
    kind = "an integer" if integer else "a finite number"
    if not bounds:
        return kind
    return f"{kind} {'in ' if '..' in bounds else ''}{bounds}{meta.get('unit') or ''}"


def _in_bounds(value, meta) -> bool:
    lo, hi, above, below = (meta.get(k) for k in ("minimum", "maximum", "above", "below"))
    return ((lo is None or value >= lo) and (hi is None or value <= hi) and (above is None or value > above)
            and (below is None or value < below))


def _help(f: dataclasses.Field) -> str:
    meta = f.metadata
    parts = [meta["help"]]
    bounds = _bounds(meta)
    if bounds:
        parts.append(f"range {bounds}{meta.get('unit') or ''}")
    default = _default(f) if (f.default is not _MISSING or f.default_factory is not _MISSING) else _MISSING
    if default is _MISSING or "(default" in meta["help"] or "default:" in meta["help"] or isinstance(default, bool):
        pass            # required, stated, or an off flag
    elif default is None:
        parts.append(f"default: {meta.get('none_means') or 'none'}")
    else:   # 0 and 0.0 are defaults too; strings quoted, so that the source 'default' reads as a name
        values = default if isinstance(default, (tuple, list)) else (default,)
        parts.append("default: " + " ".join(repr(v) if isinstance(v, str) else str(v) for v in values))
    text = "; ".join(p for p in parts if p)
    return text.replace("%", "%%")


def _converter(convert, meta):
    """The argparse ``type`` of a field: ``convert``, and for a declared number its range, with one
    message naming the value and what was expected (the same rule :func:`check_declared` applies)."""
    if convert not in (int, float) or not _bounds(meta):
        return convert
    integer = convert is int

    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            value = None
        if value is None or not math.isfinite(value) or not _in_bounds(value, meta):
            raise argparse.ArgumentTypeError(f"must be {_expected(meta, integer)}, got {text}")
        return value

    parse.__name__ = convert.__name__
    return parse


def add_arguments(parser: argparse.ArgumentParser, cls, *, exclude=()) -> None:
    """Add a flag (or positional) for every command-line field of the dataclass ``cls`` (except
    ``exclude``), and those of its nested option dataclasses."""
    groups: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        meta = f.metadata
        if not meta.get("cli") or f.name in exclude:
            continue
        if meta.get("nested") is not None:
            add_arguments(parser, meta["nested"], exclude=exclude)
            continue
        required = f.default is _MISSING and f.default_factory is _MISSING
        default = None if required else _default(f)
        kwargs = {"help": _help(f), "default": argparse.SUPPRESS}
        if meta.get("metavar"):
            kwargs["metavar"] = meta["metavar"]
        if isinstance(default, bool) and meta.get("type") is None:
            kwargs["action"] = "store_false" if meta.get("negate") else "store_true"
        else:
            convert = meta.get("type") or (type(default[0]) if isinstance(default, tuple) and default
                                          else type(default) if default is not None else str)
            kwargs["type"] = _converter(convert, meta)
            if meta.get("choices") is not None:
                kwargs["choices"] = list(meta["choices"])
            if meta.get("repeat"):
                kwargs["action"] = "append"
            if meta.get("many"):
                kwargs["nargs"] = "+"
            if meta.get("nargs") is not None:
                kwargs["nargs"] = meta["nargs"]
        target = parser
        if meta.get("group"):
            if meta["group"] not in groups:
                groups[meta["group"]] = parser.add_mutually_exclusive_group()
            target = groups[meta["group"]]
        if meta.get("positional"):
            kwargs.pop("metavar", None) if kwargs.get("metavar") == f.name else None
            if not required and "nargs" not in kwargs:
                kwargs["nargs"] = "?"
            target.add_argument(f.name, **{**kwargs, "metavar": meta.get("metavar") or f.name.upper()})
            continue
        if required:
            kwargs["required"] = True
        target.add_argument(meta.get("flag") or "--" + f.name.replace("_", "-"), dest=f.name, **kwargs)


def from_args(cls, args: argparse.Namespace, **overrides):
    """An instance of ``cls`` from the parsed flags (absent flags keep the dataclass defaults;
    nested option dataclasses are built from the same flags)."""
    values = {}
    for f in dataclasses.fields(cls):
        meta = f.metadata
        if not meta.get("cli"):
            continue
        if meta.get("nested") is not None:
            values[f.name] = from_args(meta["nested"], args)
        elif hasattr(args, f.name):
            value = getattr(args, f.name)
            several = meta.get("repeat") or meta.get("many") or meta.get("nargs") in ("*", "+") or \
                isinstance(meta.get("nargs"), int)
            values[f.name] = tuple(value) if several and value is not None else value
    values.update(overrides)
    return cls(**values)


# ------------------------------------------------------------------ checks
def check_declared(instance) -> None:
    """Check every field of an option dataclass against its declaration (choices, integer or
    number, range); OptionError naming the flag, the value and what was expected. ``None`` passes
    where ``None`` is the default (it means "not set"); nested option dataclasses check themselves."""
    cls = type(instance)
    for f in dataclasses.fields(cls):
        meta, value = f.metadata, getattr(instance, f.name)
        if not meta or meta.get("nested") is not None or (value is None and f.default is None):
            continue
        if meta.get("choices") is not None:
            values = value if isinstance(value, tuple) and (meta.get("many") or meta.get("repeat")
                                                              or meta.get("nargs") is not None) else (value,)
            for v in values:
                check_choice(cls, f.name, v, meta["choices"])
        if _bounds(meta):
            integer = (meta.get("type") or type(_default(f)) if f.default is not _MISSING else meta.get("type")) is int
            check_number(cls, f.name, value, integer=integer, **{k: meta.get(k) for k in
                                                                ("minimum", "maximum", "above", "below")})


def check_int(cls, name: str, value, *, minimum=None, maximum=None, allow_none: bool = False) -> int | None:
    """``value`` as int if it is an integer (not a bool) in range; OptionError naming the flag otherwise."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or (minimum is not None and value < minimum) or \
            (maximum is not None and value > maximum):
        meta = _field_meta(cls, name) or {"minimum": minimum, "maximum": maximum}
        expected = _expected({**meta, "minimum": minimum, "maximum": maximum}, True)
        raise OptionError(f"{flag_of(cls, name)} must be {expected}{' or nothing' if allow_none else ''}, "
                          f"got {value!r}")
    return int(value)


def _field_meta(cls, name) -> dict:
    for f in dataclasses.fields(cls):
        if f.name == name:
            return dict(f.metadata)
    return {}


def check_number(cls, name: str, value, *, minimum=None, maximum=None, above=None, below=None,
                 integer: bool = False) -> float:
    """``value`` if finite (an integer with ``integer``) and inside the bounds (inclusive
    ``minimum``/``maximum``, exclusive ``above``/``below``); OptionError naming the flag otherwise."""
    bounds = {"minimum": minimum, "maximum": maximum, "above": above, "below": below}
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (not integer or isinstance(value, int)) and _in_bounds(value, bounds)
    if not ok:
        meta = {**_field_meta(cls, name), **bounds}
        raise OptionError(f"{flag_of(cls, name)} must be {_expected(meta, integer)}, got {value!r}")
    return value if integer else float(value)


def check_choice(cls, name: str, value, choices) -> Any:
    """``value`` if it is one of ``choices``; OptionError naming the flag and the choices otherwise."""
    if value not in tuple(choices):
        raise OptionError(f"{flag_of(cls, name)} must be one of {', '.join(map(str, choices))}; got {value!r}")
    return value

"""The command table's machinery: a command is declared once as a :class:`Command` (name, help,
its option dataclass and its handler, both named by ``"module:attribute"``), and nothing of it is
imported until that command is used.

- ``ct-degradbench --help`` and ``--version`` import no command module at all;
- ``ct-degradbench build --help`` (or a bad flag) imports the option dataclasses of ``build``
  only (declared with :func:`~ctdegradbench.core.options.option`, light by rule: no torch);
- running a command builds its option dataclass from the parsed flags (the dataclass validates
  itself, once) and then imports and calls its handler with it.

No argument list is scanned by hand: a :class:`CommandParser` declares its options when argparse
hands it the arguments (or asks it for help).
"""

from __future__ import annotations

import argparse
import importlib
from dataclasses import dataclass

from ctdegradbench.core.options import add_arguments, from_args


@dataclass(frozen=True)
class Command:
    """One command of the table.

    Attributes
    ----------
    name, help : str
        As listed by ``--help``; ``description`` (default: ``help``) heads the command's own help.
    options : str
        ``"module:Class"`` of the option dataclass (its fields are the flags; empty: no options).
    run : str
        ``"module:function"``: the handler, called with the options instance; returns the exit status.
    commands : tuple of Command
        Sub-commands (``bench iqa``, ``leaderboard push``, ...); a group has no ``run``.
    metavar : str
        How the usage names the sub-command of a group.
    dest : str
        Where the parsed arguments hold the chosen sub-command (default ``<name>_command``).
    """

    name: str
    help: str
    options: str = ""
    run: str = ""
    description: str = ""
    commands: tuple["Command", ...] = ()
    metavar: str = "COMMAND"
    dest: str = ""


def load(reference: str):
    """The attribute named by ``"module:attribute"`` (the module imported now)."""
    module, _, attribute = reference.partition(":")
    return getattr(importlib.import_module(module), attribute)


class _Formatter(argparse.HelpFormatter):
    """Appends ``(default: X)`` to a plain argparse option's help unless it states one (the option()
    fields state theirs already)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "default" in text or action.default in (None, False, argparse.SUPPRESS) or action.required:
            return text
        return f"{text} (default: %(default)s)"


class CommandParser(argparse.ArgumentParser):
    """An argument parser that declares its command's options (or sub-commands) on first use:
    when argparse passes it the arguments, or when its help or usage is asked for."""

    def __init__(self, *args, command: Command | None = None, **kwargs):
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)
        self.command = command
        self._declared = command is None

    def declare(self) -> "CommandParser":
        """Add the command's flags (importing its option dataclass) or its sub-commands; once."""
        if self._declared:
            return self
        self._declared = True
        command = self.command
        if command.commands:
            sub = self.add_subparsers(dest=command.dest or f"{command.name}_command", required=True, metavar=command.metavar,
                                      parser_class=CommandParser)
            for child in command.commands:
                add_command(sub, child)
        else:
            if command.options:
                add_arguments(self, load(command.options))
            self.set_defaults(_command=command)
        return self

    def parse_known_args(self, args=None, namespace=None):
        self.declare()
        return super().parse_known_args(args, namespace)

    def format_help(self):
        self.declare()
        return super().format_help()

    def format_usage(self):
        self.declare()
        return super().format_usage()


def add_command(sub, command: Command) -> CommandParser:
    """Register ``command`` on an argparse sub-parsers object (nothing imported)."""
    description = command.description or command.help[0].upper() + command.help[1:] + "."
    return sub.add_parser(command.name, help=command.help, description=description, command=command)


def build_parser(prog: str, description: str, commands, version: str | None = None) -> CommandParser:
    """The top-level parser of ``commands`` (a tuple of :class:`Command`)."""
    parser = CommandParser(prog=prog, description=description,
                           command=Command(prog, description, commands=tuple(commands), dest="command"))
    if version is not None:
        parser.add_argument("--version", action="version", version=f"%(prog)s {version}")
    parser.declare()
    return parser


def options_of(command: Command, args: argparse.Namespace):
    """The option dataclass instance of ``command`` from parsed ``args`` (validated by the dataclass)."""
    return from_args(load(command.options), args) if command.options else None


def run(command: Command, args: argparse.Namespace) -> int:
    """Build the command's options from ``args``, import its handler and call it."""
    return load(command.run)(options_of(command, args))

"""``--help`` states every option's default (README: "every option listed with its default")."""

import re

import pytest

from ct_degradbench import command_parser


def _help_of(command: str) -> dict[str, str]:
    """{flag: its help text, whitespace collapsed} of ``ct-degradbench COMMAND --help``."""
    sub = command_parser(command)
    return {action.option_strings[0]: " ".join(sub._get_formatter()._expand_help(action).split())
            for action in sub._actions if action.option_strings and action.help}


@pytest.mark.parametrize("command", ["build", "sources", "figure"])
def test_every_valued_option_states_its_default(command):
    texts = _help_of(command)
    sub = command_parser(command)
    for action in sub._actions:
        if action.option_strings and action.nargs != 0 and not action.required and action.dest != "help":
            assert "default" in texts[action.option_strings[0]], action.option_strings[0]


def test_defaults_read_as_values():
    texts = _help_of("build")
    assert texts["--seed"].endswith("default: 0")
    assert texts["--min-body-fraction"].endswith("default: 0.0")
    assert texts["--max-slices"].endswith("default: every slice")
    assert texts["--source"].endswith("default: 'default'")
    assert re.search(r"default: [0-9.e+]+$", texts["--i0-per-mm"])


def readme_commands() -> list[list[str]]:
    """Every ``ct-degradbench ...`` command of the README's code blocks (continued lines joined,
    comments dropped), as argument lists."""
    import shlex
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    blocks, inside = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            inside = not inside
            if inside:
                blocks.append("")
        elif inside:
            blocks[-1] += line + "\n"
    commands = []
    for block in blocks:
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" && ")[-1].split("  #")[0].strip()
            if line.startswith("ct-degradbench "):
                commands.append(shlex.split(line)[1:])
    return commands


def test_the_readme_commands_parse_unchanged():
    """Each README command is accepted by the command table as written (flags, choices, numbers)."""
    from ct_degradbench import build_parser

    commands = readme_commands()
    assert len(commands) >= 25
    for argv in commands:
        args = build_parser().parse_args(argv)
        assert args._command.run, argv

"""``--help`` states every option's default (README: "every option listed with its default")."""

import re

import pytest

from ct_degradbench import build_parser


def _help_of(command: str) -> dict[str, str]:
    """{flag: its help text, whitespace collapsed} of ``ct-degradbench COMMAND --help``."""
    parser = build_parser([command])
    sub = next(a for a in parser._actions if a.dest == "command").choices[command]
    return {action.option_strings[0]: " ".join(sub._get_formatter()._expand_help(action).split())
            for action in sub._actions if action.option_strings and action.help}


@pytest.mark.parametrize("command", ["build", "sources", "figure"])
def test_every_valued_option_states_its_default(command):
    texts = _help_of(command)
    parser = build_parser([command])
    sub = next(a for a in parser._actions if a.dest == "command").choices[command]
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

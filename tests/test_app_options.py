"""``ct-degradbench app``'s options are checked before Gradio is imported (no [app] extra needed)."""

import pytest

from ct_degradbench import main as cli_main


@pytest.mark.parametrize("port", ["0", "99999", "abc"])
def test_a_port_outside_1_65535_is_one_error_line(port, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["app", "--port", port])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"must be an integer in 1..65535 (a TCP port), got {port}" in err and "Traceback" not in err

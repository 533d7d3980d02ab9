"""Frontend checks from the final quality pass: input a demanding user gives that once ended in
an internal error (exit 1) instead of the documented exit code."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("session", ["999999999999999999999999", "\u00b2"])
def test_history_show_of_an_id_no_session_can_have_is_bad_input(moa, session):
    for command in ("show", "delete"):
        result = moa("history", command, session)
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr
        assert result.stderr.count("moa: error:") == 1

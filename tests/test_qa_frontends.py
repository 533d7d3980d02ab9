"""Frontend checks from the final quality pass: input a demanding user gives that once ended in
an internal error (exit 1) instead of the documented exit code."""

from __future__ import annotations

import subprocess

import pytest

from spawning import moa_command


@pytest.mark.parametrize("session", ["999999999999999999999999", "\u00b2"])
def test_history_show_of_an_id_no_session_can_have_is_bad_input(moa, session):
    for command in ("show", "delete"):
        result = moa("history", command, session)
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr
        assert result.stderr.count("moa: error:") == 1


def _run_with_stdin_closed(args, env, cwd):
    """Run moa with no file descriptor 0 at all (`moa chat <&-`)."""
    return subprocess.run(moa_command() + list(args), stdin=subprocess.DEVNULL, capture_output=True, env=env,
                          cwd=cwd, timeout=60, preexec_fn=lambda: __import__("os").close(0))


@pytest.mark.parametrize("args, expected", [(["chat"], 0), (["ask"], 2), (["mcp"], 0)])
def test_a_closed_stdin_reads_as_an_empty_one(moa_env, tmp_path, args, expected):
    env = {k: v for k, v in moa_env.items() if v is not None}
    result = _run_with_stdin_closed(args, env, tmp_path)
    stderr = result.stderr.decode(errors="replace")
    assert result.returncode == expected, stderr
    assert "Traceback" not in stderr and "internal error" not in stderr

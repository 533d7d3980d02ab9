"""Issue 19: every configured header value is a secret, and none reaches sessions.db.

A provider sends a `${VAR}` header, credential-like literal headers and a plain literal header;
the upstream echoes them all back in its errors (as a status message, in a reference's failure,
and in the aggregator's). Random values with no known key prefix, so only the registry of
configured secrets can catch them. Checked over the raw bytes of sessions.db and its -wal
(`strings`, `sqlite3 .dump`), and over --json and stderr.
"""

from __future__ import annotations

import json
import secrets
import shutil
import sqlite3
import subprocess
from pathlib import Path


def _values() -> dict[str, str]:
    return {name: secrets.token_hex(16) for name in ("env", "apikey", "extra", "team")}


def _config(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        "[providers.lab]\n"
        f'base_url = "{url}"\n'
        'key_required = false\n'
        'headers = { "X-From-Env" = "${LAB_HEADER}", "X-Api-Key" = "' + _VALUES["apikey"] + '", '
        '"Authorization-Extra" = "Token ' + _VALUES["extra"] + '", "X-Team" = "' + _VALUES["team"] + '" }\n'
    )
    return path


_VALUES = _values()


def _everything_stored(home: Path) -> bytes:
    """The database's raw bytes (main file, -wal, -journal) plus its SQL dump."""
    blobs = [p.read_bytes() for p in home.glob("sessions.db*")]
    dump = "\n".join(sqlite3.connect(home / "sessions.db").iterdump()).encode()
    if shutil.which("sqlite3"):
        dump += subprocess.run(["sqlite3", str(home / "sessions.db"), ".dump"], capture_output=True).stdout
    if shutil.which("strings"):
        for p in home.glob("sessions.db*"):
            dump += subprocess.run(["strings", "-n", "8", str(p)], capture_output=True).stdout
    return b"\n".join(blobs) + dump


def test_header_values_echoed_by_errors_never_reach_the_sessions_database(moa, server, tmp_path, moa_env):
    echo = " ".join(f"{k}={v}" for k, v in _VALUES.items())
    server.script("ref", status=400, message=f"bad headers: {echo}")
    server.script("agg", status=400, message=f"still bad: {echo} {json.dumps(_VALUES)}")
    env = {"MOA_CONFIG": str(_config(tmp_path, server.v1)), "LAB_HEADER": _VALUES["env"]}
    run = moa("ask", "-r", "lab:ref,lab:ok", "-a", "lab:agg", "--no-fallback", "--json", "q", env=env)
    assert run.returncode != 0
    sent = server.requests("ref")[0]["headers"]
    assert sent["x-from-env"] == _VALUES["env"] and sent["x-team"] == _VALUES["team"]  # they were sent...
    home = Path(moa_env["MOA_HOME"])
    stored = _everything_stored(home)
    assert b"bad headers" in stored  # ...and the errors were saved...
    for value in _VALUES.values():  # ...without any of them
        assert value.encode() not in stored and value[:12].encode() not in stored
        assert value not in run.stdout and value not in run.stderr

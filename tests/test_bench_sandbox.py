"""Hostile graded programs against the real sandbox (bubblewrap): none can fake a pass, write or
delete outside, signal the host's processes, read a key, or outlive moa bench (even kill -9)."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import moa_command, wait_for
from moa_cli.bench.sandbox import grade, run_program
from moa_cli.bench.suites import humaneval_data_file

PROBLEMS = {p["task_id"]: p for p in map(json.loads, gzip.open(humaneval_data_file(), "rt", encoding="utf-8"))}
ADD = PROBLEMS["HumanEval/53"]  # def add(x: int, y: int)


def wrong_add(trick: str) -> str:
    """A wrong answer to HumanEval/53 (it returns 0) that first plays `trick`."""
    return "```python\ndef add(x, y):\n" + "\n".join("    " + line for line in trick.splitlines()) + "\n    return 0\n```"


FAKE_PASSES = {
    "posix._exit(0)": "import posix\nposix._exit(0)",
    "atexit handler": "import atexit, os\natexit.register(lambda: os._exit(0))\nraise ValueError('wrong')",
    "thread": "import threading, os, time\nthreading.Thread(target=lambda: os._exit(0)).start()\ntime.sleep(2)",
    "finaliser": "import os\nclass Bye:\n    def __del__(self):\n        os._exit(0)\nBye()\nraise ValueError('wrong')",
    "reload(os)": "import importlib, os\nos = importlib.reload(os)\nos._exit(0)",
    "stderr raising SystemExit(0)": "import sys\nclass Quiet:\n    def write(self, text):\n        raise SystemExit(0)\n"
                                    "    def flush(self):\n        raise SystemExit(0)\nsys.stderr = sys.__stderr__ = Quiet()\n"
                                    "raise ValueError('wrong')",
    "SystemExit(0)": "raise SystemExit(0)",
    "signal.alarm": "import signal, os\nsignal.signal(signal.SIGALRM, lambda *a: os._exit(0))\nsignal.alarm(1)\n"
                    "import time\ntime.sleep(3)",
}


def test_no_trick_fakes_a_pass(bwrap):
    async def run_all():
        return await asyncio.wait_for(asyncio.gather(*(grade(ADD, wrong_add(t)) for t in FAKE_PASSES.values())), 120)

    runs = dict(zip(FAKE_PASSES, asyncio.run(run_all())))
    assert {name: run.status for name, run in runs.items() if run.passed} == {}
    assert all(run.isolation == "bwrap" for run in runs.values())
    # ... while the right answer, in the same shape, passes.
    assert asyncio.run(grade(ADD, "```python\ndef add(x, y):\n    return x + y\n```")).passed


def test_nothing_outside_is_written_deleted_or_signalled(bwrap, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    made = [tmp_path / f"made-{i}.txt" for i in range(5)]
    sleeper = subprocess.Popen(["sleep", "60"])
    tricks = [
        f"import posix\nposix.write(posix.open({str(made[0])!r}, posix.O_CREAT | posix.O_WRONLY), b'x')",
        f"import io\nio.FileIO({str(made[1])!r}, 'w').write(b'x')",
        f"import posix\nposix.unlink({str(victim)!r})",
        f"import os\nos.posix_spawn('/bin/sh', ['sh', '-c', 'echo x > {made[2]}; rm -f {victim}'], {{}})\n"
        f"import time\ntime.sleep(0.5)",
        f"import os\nos.kill({sleeper.pid}, 9)",
        f"import os\nos.kill({os.getpid()}, 9)",
        f"import subprocess\nsubprocess.run(['sh', '-c', 'cp /etc/hostname {made[3]}'])",
        f"open({str(made[4])!r}, 'w').write('x')",
    ]
    try:
        async def run_all():
            return await asyncio.wait_for(asyncio.gather(*(grade(ADD, wrong_add(t)) for t in tricks)), 120)

        runs = asyncio.run(run_all())
        assert sleeper.poll() is None  # the host's process was out of reach
    finally:
        sleeper.kill()
        sleeper.wait()
    assert not any(run.passed for run in runs)
    assert victim.read_text() == "keep me"
    assert [p for p in made if p.exists()] == []


def test_a_canary_key_is_out_of_reach(bwrap, tmp_path, monkeypatch):
    canary = secrets.token_hex(24)  # no known prefix: found only by reading it
    monkeypatch.setenv("OPENAI_API_KEY", canary)
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps({"openai": canary}))
    home_keys = Path.home() / ".config"
    program = f"""
import glob, os
seen = [repr(dict(os.environ))]
paths = [{str(keys)!r}, {str(home_keys)!r}, '/proc/self/environ', '/proc/1/environ',
         '/proc/{os.getpid()}/environ', '/proc/{os.getppid()}/environ', '/proc/%d/environ' % os.getppid()]
paths += glob.glob('/proc/*/environ') + glob.glob('/proc/*/cmdline') + glob.glob('/tmp/**', recursive=True)
opened = 0
for path in paths:
    try:
        with open(path, 'rb') as handle:
            seen.append(handle.read(1 << 20).decode('latin-1'))
            opened += 1
    except OSError:
        pass
for top in ('/', os.path.expanduser('~')):
    seen += os.listdir(top)
blob = ''.join(seen)
raise Exception(('FOUND' if {canary!r} in blob else 'clean') + ' after reading %d files' % opened)
"""
    run = asyncio.run(run_program(program))
    assert run.status == "failed" and run.detail.startswith("Exception: clean after reading"), run.detail
    assert int(run.detail.split()[-2]) >= 3  # it did read what it could (its own /proc entries)


def test_a_daemon_does_not_outlive_its_grading(bwrap, tmp_path):
    marker = "moa-daemon-" + secrets.token_hex(6)
    program = (f"import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
               f"        os.execv('/bin/sh', ['sh', '-c', 'exec -a {marker} sleep 30'])\n    os._exit(0)\n"
               f"time.sleep(0.3)\n")
    run = asyncio.run(run_program(program))
    assert run.passed
    assert _processes_named(marker) == []


def test_numpy_doctest_unittest_asyncio_and_multiprocessing_work_inside(bwrap):
    program = """
import asyncio, doctest, multiprocessing, unittest
import numpy
assert numpy.arange(4).sum() == 6
async def one():
    return 1
assert asyncio.run(one()) == 1
with multiprocessing.Pool(2) as pool:
    assert pool.map(abs, [-1, -2]) == [1, 2]
def documented():
    '''
    >>> 1 + 1
    2
    '''
assert doctest.run_docstring_examples(documented, {}) is None
class Case(unittest.TestCase):
    def test(self):
        self.assertEqual(1, 1)
assert unittest.TextTestRunner(stream=open('/dev/null', 'w')).run(unittest.defaultTestLoader.loadTestsFromTestCase(Case)).wasSuccessful()
"""
    run = asyncio.run(run_program(program, time_limit=60))
    assert run.passed, run.detail


def test_the_guard_still_runs_where_bwrap_cannot(tmp_path):
    async def run_all():
        return await asyncio.wait_for(asyncio.gather(
            run_program("assert 1 + 1 == 2\n", isolation_kind="guard"),
            run_program("import posix\nposix._exit(0)\n", isolation_kind="guard"),
            run_program(f"open({str(tmp_path / 'x')!r}, 'w')\n", isolation_kind="guard"),
        ), 60)

    runs = asyncio.run(run_all())
    assert [r.status for r in runs] == ["passed", "failed", "failed"]
    assert {r.isolation for r in runs} == {"guard"}
    assert not (tmp_path / "x").exists()


# ------------------------------------------------------------------------ moa bench end to end

CONFIG = """
[mixes.trio]
layers = [["openai:r1", "openai:r2"]]
aggregator = "openai:agg"
"""
SLOW_ANSWER = "```python\ndef has_close_elements(numbers, threshold):\n    import time\n    time.sleep(60)\n```"


def _processes_named(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


def _descendants(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _alive(pids: set[int]) -> set[int]:
    alive = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            alive.add(pid)
    return alive


def _start(moa_env, tmp_path, *args):
    command = [*moa_command(), "bench", "humaneval", "--mix", "trio",
               "--out", str(tmp_path / "run"), *args]
    return subprocess.Popen(command, env=moa_env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)


def _graded_programs(process) -> set[int]:
    """The python processes under moa bench's bwrap children (the graded programs)."""
    pids = _descendants(process.pid)
    return {pid for pid in pids if b"-I\x00-S" in _cmdline(pid) and b"bwrap" not in _cmdline(pid)[:40]}


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def test_no_graded_program_is_left_after_kill_9(bwrap, moa_env, server, home, tmp_path):
    server.script("*", reply=SLOW_ANSWER)
    process = _start(moa_env, tmp_path, "--limit", "1")
    try:
        wait_for(lambda: len(_graded_programs(process)) >= 2, "two graded programs running", timeout=60)
        tree = _descendants(process.pid)
    finally:
        process.kill()
        process.wait(timeout=30)
    wait_for(lambda: not _alive(tree), "the graded programs to be gone", timeout=20)


def _signal_mid_grading(process, signum: int, ready=lambda: True, what: str = "") -> tuple[set[int], str]:
    """Once `ready()` and two graded programs are running, send `signum` to moa bench and wait for
    it to end: (the processes it had started, what it said on stderr)."""
    try:
        wait_for(lambda: ready() and len(_graded_programs(process)) >= 2,
                 f"{what + ', ' if what else ''}two graded programs running", timeout=60)
        tree = _descendants(process.pid)
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
    return tree, stderr


def test_ctrl_c_during_grading_exits_130_with_nothing_left(bwrap, moa_env, server, home, tmp_path):
    server.script("*", reply=SLOW_ANSWER)
    process = _start(moa_env, tmp_path, "--limit", "1")
    predictions = tmp_path / "run" / "predictions.jsonl"
    tree, stderr = _signal_mid_grading(process, signal.SIGINT, lambda: predictions.exists()
                                       and len(predictions.read_bytes().splitlines()) == 3, "every answer saved")
    assert process.returncode == 130, stderr
    assert "internal error" not in stderr and "Traceback" not in stderr
    said = [line for line in stderr.splitlines() if line.startswith("moa:")]  # the rest is the progress display
    assert len(said) == 1 and said[0].startswith("moa: error:"), stderr
    wait_for(lambda: not _alive(tree), "the graded programs to be gone", timeout=20)
    # What was answered is saved for --resume.
    assert len((tmp_path / "run" / "predictions.jsonl").read_text().splitlines()) == 3


def test_sigterm_during_grading_exits_143_with_nothing_left(bwrap, moa_env, server, home, tmp_path):
    server.script("*", reply=SLOW_ANSWER)
    process = _start(moa_env, tmp_path, "--limit", "1")
    tree, stderr = _signal_mid_grading(process, signal.SIGTERM)
    assert process.returncode == 143, stderr
    assert "internal error" not in stderr and "Traceback" not in stderr
    wait_for(lambda: not _alive(tree), "the graded programs to be gone", timeout=20)


def test_a_key_a_program_raises_is_not_written_and_isolation_is_reported(bwrap, moa, server, home, tmp_path):
    key = secrets.token_hex(20)
    leaky = "```python\ndef has_close_elements(numbers, threshold):\n    raise Exception(" + repr(key) + ")\n```"
    server.script("*", reply=leaky)
    out = tmp_path / "run"
    result = moa("bench", "humaneval", "--mix", "trio", "--limit", "1", "--out", str(out),
                 env={"OPENAI_API_KEY": key})
    assert result.returncode == 0, result.stderr
    for path in out.iterdir():
        if path.is_file():
            assert key not in path.read_bytes().decode(errors="replace"), path
    assert key not in result.stdout + result.stderr
    grades = [json.loads(line) for line in (out / "grades.jsonl").read_text().splitlines()]
    assert [g["passed"] for g in grades] == [False] * 3 and {g["isolation"] for g in grades} == {"bwrap"}
    assert json.loads((out / "report.json").read_text())["isolation"] == "bwrap"


def test_the_fallback_to_the_guard_is_said_on_stderr_and_in_the_report(moa, server, home, tmp_path):
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "bwrap").write_text("#!/bin/sh\necho 'bwrap: No permissions to creating new namespace' >&2\nexit 1\n")
    (fake / "bwrap").chmod(0o755)
    server.script("*", replies={"def has_close_elements": "```python\ndef has_close_elements(n, t):\n"
                                                          "    return any(abs(a - b) < t for i, a in enumerate(n) "
                                                          "for b in n[i + 1:])\n```"})
    out = tmp_path / "run"
    result = moa("bench", "humaneval", "--mix", "trio", "--limit", "1", "--out", str(out),
                 env={"PATH": f"{fake}:{os.environ['PATH']}"})
    assert result.returncode == 0, result.stderr
    assert "guard" in result.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["isolation"] == "guard"
    assert [row["quality"] for row in report["systems"]] == [1.0, 1.0, 1.0]
    assert "guard" in (out / "report.md").read_text()


def test_a_sandbox_left_by_a_killed_moa_bench_is_swept_at_the_next_start(bwrap):
    """bwrap killed while it starts can leave its inner half waiting forever (bubblewrap #633);
    one that names a moa bench that is gone is killed by the next run's start-up sweep."""
    from moa_cli.bench import sandbox

    gone = subprocess.Popen(["true"])
    gone.wait()
    prefix = list(sandbox.bwrap_prefix())
    prefix[prefix.index(sandbox.OWNER) + 1] = str(gone.pid)
    stale = subprocess.Popen([*prefix, "/bin/sleep", "60"], start_new_session=True)
    try:
        wait_for(lambda: len(_descendants(stale.pid)) >= 2, "the stale sandbox to start", timeout=30)
        assert sandbox.sweep_stale_sandboxes() >= 1
        assert stale.wait(timeout=20) == -signal.SIGKILL
    finally:
        stale.kill()
        stale.wait()


FORKS = """
import os, time
started = 0
try:
    for _ in range(200):
        if os.fork() == 0:
            time.sleep(30)
            os._exit(0)
        started += 1
except OSError:
    pass
assert started < 200, started
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="RLIMIT_NPROC already binds a user who is not root")
def test_a_fork_bomb_is_bounded_even_when_moa_bench_runs_as_root():
    """The kernel exempts root from RLIMIT_NPROC, so a root moa bench bounds each graded program's
    processes with a pids cgroup: the 200th fork must fail (the program passes only if it did)."""
    from moa_cli.bench import sandbox

    if sandbox._pids_root() is None:
        pytest.skip("no writable pids cgroup here")
    run = asyncio.run(run_program(FORKS, time_limit=60))
    assert run.status == "passed", run
    assert not [g for g in sandbox._pids_root().glob(f"{sandbox.CGROUP_PREFIX}{os.getpid()}-*")]


def test_packages_installed_under_tmp_are_importable_inside(bwrap, tmp_path):
    """A venv (or a checkout's venv) under /tmp must be bound on top of the sandbox's private
    /tmp, not hidden by it: CI clones into such places, and numpy went missing there."""
    site = tmp_path / "site-packages"
    site.mkdir()
    (site / "moa_probe_module.py").write_text("VALUE = 42\n")
    program = "import moa_probe_module\nassert moa_probe_module.VALUE == 42\n"
    code = (f"import sys, asyncio\nsys.path.insert(0, {str(site)!r})\n"
            "from moa_cli.bench.sandbox import run_program\n"
            f"print(asyncio.run(run_program({program!r}, time_limit=60)).status)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.split()[-1:] == ["passed"], out.stdout + out.stderr

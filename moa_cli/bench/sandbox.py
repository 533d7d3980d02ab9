"""Runs a HumanEval program (prompt + completion + test + check) isolated by the operating system.

Each program runs under bubblewrap (`bwrap`): new user, PID, network, IPC, UTS and mount
namespaces, as uid 65534; a root made of read-only binds of the system and the Python install
only (no home, no keys, no run directory); a new /proc that shows only the sandbox's own
processes; private size-limited tmpfs for its working directory and /tmp; an empty environment;
rlimits for memory, CPU time, file size and processes; `--die-with-parent`, and the PID namespace
takes every process it started down with it, so none outlives moa bench, even after `kill -9`.

Where bwrap is missing or the kernel refuses it, the same harness runs behind the old Python
guard (sandbox_child.guard), which is NOT a security sandbox; `isolation()` says which, and the
report says it too.

Starting a sandbox costs far more than a HumanEval test takes to run, so inside
`async with sandboxes(n)` (what a bench run holds) programs run in n warm ones: each runs one
program at a time, each in a fresh fork of its harness, and is made as new between programs:
every process the program left is killed and what it added to the writable directories is
removed (sandbox_child.serve). A sandbox that timed out, died or could not be made clean is replaced.

A program passes only when the harness sends the run's random nonce after check() returned
(see sandbox_child.py); its exit status counts for nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import itertools
import os
import secrets
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from functools import lru_cache, partial
from pathlib import Path

HARNESS = Path(__file__).with_name("sandbox_child.py")
TIME_LIMIT = 10.0  # wall seconds per program; HumanEval's tests take milliseconds when the code is right
MEMORY_LIMIT = 2 << 30  # bytes of address space (numpy and a process pool fit)
FILE_SIZE_LIMIT = 16 << 20
TMPFS_SIZE = 64 << 20  # each of the work directory and /tmp
PROCESS_LIMIT = 64  # per sandbox user (the kernel does not apply it to root)
DETAIL_BYTES = 600  # how much of a failure's message is kept
READ_LIMIT = 64 << 10  # bytes read back from the sandbox at most; the rest is never buffered
WORKDIR = "/sandbox"
CLEAN_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": WORKDIR, "TMPDIR": "/tmp", "LANG": "C.UTF-8",
             "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@dataclass
class TestRun:
    status: str  # passed | failed | timeout | killed | error (the sandbox did not start)
    detail: str = ""  # why it failed: the exception, or the limit that stopped it
    isolation: str = "bwrap"  # bwrap | guard

    @property
    def passed(self) -> bool:
        return self.status == "passed"


@dataclass(frozen=True)
class Isolation:
    kind: str  # bwrap | guard
    reason: str = ""  # why not bwrap


# ------------------------------------------------------------------------ what the sandbox sees


def _python() -> str:
    """The real interpreter (not a venv's symlink, whose pyvenv.cfg lives outside the binds)."""
    return os.path.realpath(sys.executable)


def import_paths() -> list[str]:
    """sys.path for the program: the standard library and installed packages, not the current
    directory nor a source checkout (an editable install's root may hold a .env)."""
    prefixes = {os.path.realpath(p) for p in (sys.base_prefix, sys.prefix, sys.exec_prefix)}
    paths = []
    for entry in sys.path:
        if not entry or not os.path.exists(entry):
            continue
        real = os.path.realpath(entry)
        packaged = os.path.basename(real) in ("site-packages", "dist-packages")
        if packaged or any(real == p or real.startswith(p + os.sep) for p in prefixes):
            if real not in paths:
                paths.append(real)
    return paths


def _binds() -> list[str]:
    """Read-only binds: the system directories, the interpreter's install and the import paths."""
    args = []
    for top in ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    for name in ("ld.so.cache", "ld.so.conf", "localtime", "nsswitch.conf"):
        path = "/etc/" + name
        if os.path.exists(path):
            args += ["--ro-bind", path, path]
    roots = [os.path.realpath(sys.base_prefix), *import_paths()]
    covered: list[str] = ["/usr", "/bin", "/sbin", "/lib", "/lib64"]
    for root in sorted(set(roots), key=len):
        if not any(root == c or root.startswith(c + os.sep) for c in covered):
            covered.append(root)
            args += ["--ro-bind", root, root]
    return args


@lru_cache(maxsize=1)
def bwrap_prefix() -> tuple[str, ...] | None:
    binary = shutil.which("bwrap")
    if binary is None:
        return None
    return (binary, "--unshare-user", "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts",
            "--unshare-cgroup-try", "--uid", "65534", "--gid", "65534", "--die-with-parent", "--new-session",
            # /tmp's tmpfs goes first: a Python or venv installed under /tmp is then bound on top of
            # it, not hidden by it.
            "--size", str(TMPFS_SIZE), "--tmpfs", "/tmp",
            *_binds(), "--proc", "/proc", "--dev", "/dev",
            # /dev/shm (multiprocessing's locks live there) bounded like the rest; /dev itself read-only.
            "--size", str(TMPFS_SIZE), "--tmpfs", "/dev/shm", "--remount-ro", "/dev",
            "--size", str(TMPFS_SIZE), "--tmpfs", WORKDIR,
            "--chdir", WORKDIR, "--clearenv", *(x for k, v in CLEAN_ENV.items() for x in ("--setenv", k, v)),
            "--setenv", OWNER, str(os.getpid()))


OWNER = "MOA_BENCH_OWNER"  # on every bwrap's command line: which moa bench started it

# The kernel never applies RLIMIT_NPROC to root, and bwrap run by root maps the sandbox's uid onto
# root's: a fork bomb graded by a root moa bench would fill the machine. A pids cgroup per program
# bounds it whoever runs moa (cgroup v1's pids hierarchy or v2's unified one; skipped where
# neither can be written, as for ordinary users, whom RLIMIT_NPROC already binds).
PIDS_HIERARCHIES = ("/sys/fs/cgroup/pids", "/sys/fs/cgroup")
CGROUP_PREFIX = "moa-bench-"
_cgroups = itertools.count()


@lru_cache(maxsize=1)
def _pids_root() -> Path | None:
    if os.geteuid() != 0:
        return None
    for hierarchy in map(Path, PIDS_HIERARCHIES):
        controllers = hierarchy / "cgroup.controllers"  # v2 only: is the pids controller there?
        if controllers.exists() and "pids" not in controllers.read_text().split():
            continue
        probe = hierarchy / f"{CGROUP_PREFIX}probe-{os.getpid()}"
        try:
            if controllers.exists():
                (hierarchy / "cgroup.subtree_control").write_text("+pids")
            probe.mkdir(exist_ok=True)
            ok = (probe / "pids.max").exists()
            probe.rmdir()
        except OSError:
            continue
        if ok:
            return hierarchy
    return None


def _new_pids_cgroup() -> Path | None:
    """A fresh cgroup holding at most PROCESS_LIMIT processes, or None where none can be made."""
    root = _pids_root()
    if root is None:
        return None
    group = root / f"{CGROUP_PREFIX}{os.getpid()}-{next(_cgroups)}"
    try:
        group.mkdir()
        (group / "pids.max").write_text(str(PROCESS_LIMIT))
    except OSError:
        _remove_cgroup(group)
        return None
    return group


def _remove_cgroup(group: Path | None) -> None:
    """Remove a program's cgroup once its processes are gone (the kernel refuses while any is left:
    then it stays, and the next run's sweep takes it)."""
    if group is None:
        return
    for _ in range(20):
        try:
            group.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.005)


def sweep_stale_sandboxes() -> int:
    """Kill what a killed moa bench left behind: bwrap has a known race (containers/bubblewrap
    #633) where a bwrap killed while it starts leaves its inner half, the PID namespace's init,
    waiting forever. Those carry OWNER with the pid of a moa bench that is gone. Returns how many."""
    prefix = bwrap_prefix()
    if prefix is None or not os.path.isdir("/proc"):
        return 0
    mark = f"\0{OWNER}\0".encode()
    killed = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                command = handle.read(1 << 16)
        except OSError:
            continue
        if not command.startswith(prefix[0].encode() + b"\0") or mark not in command:
            continue
        owner = command.split(mark, 1)[1].split(b"\0", 1)[0]
        if not owner.isdigit() or _alive(int(owner)):
            continue
        try:
            os.kill(int(entry), signal.SIGKILL)
            killed += 1
        except OSError:
            pass
    root = _pids_root()
    for group in root.glob(f"{CGROUP_PREFIX}*-*") if root else ():
        owner = group.name[len(CGROUP_PREFIX):].split("-", 1)[0]
        if owner.isdigit() and not _alive(int(owner)):
            _remove_cgroup(group)
    return killed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_isolation: Isolation | None = None


async def isolation() -> Isolation:
    """bwrap when it is installed and a trivial program passes under it; else the guard, with why.
    Probed once per process."""
    global _isolation
    if _isolation is None:
        if bwrap_prefix() is None:
            _isolation = Isolation("guard", "bwrap (bubblewrap) is not installed")
        else:
            sweep_stale_sandboxes()
            run, error = await _run("pass\n", "bwrap", TIME_LIMIT, MEMORY_LIMIT)
            _isolation = Isolation("bwrap") if run.passed else Isolation("guard", f"bwrap refused to run: {error}")
    return _isolation


def guard_notice(chosen: Isolation) -> str:
    return (f"graded programs run behind moa's Python guard, which is NOT a security sandbox: {chosen.reason}; "
            f"install bubblewrap (apt install bubblewrap) to isolate them")


# ------------------------------------------------------------------------------------ running


async def run_program(program: str, *, time_limit: float = TIME_LIMIT, memory_limit: int = MEMORY_LIMIT,
                      isolation_kind: str | None = None) -> TestRun:
    """Run `program` isolated (bwrap, else the guard; or as `isolation_kind` says) and say how it ended.
    Inside `async with sandboxes(n):` a bwrap program runs in one of n warm sandboxes; else in a
    sandbox of its own."""
    kind = isolation_kind or (await isolation()).kind
    run, _ = await _run(program, kind, time_limit, memory_limit)
    return run


def _payload(program: str, kind: str, time_limit: float, memory_limit: int) -> tuple[str, bytes]:
    nonce = secrets.token_hex(16)
    cpu = int(time_limit) + 1
    header = f"{nonce} {memory_limit} {cpu} {FILE_SIZE_LIMIT} {PROCESS_LIMIT} {kind}\n"
    return nonce, header.encode() + _paths_line(tuple(sys.path)) + program.encode("utf-8", "replace")


@lru_cache(maxsize=4)
def _paths_line(sys_path: tuple[str, ...]) -> bytes:
    """import_paths() as the harness reads them, worked out once per `sys_path` (the cache's key:
    a realpath each entry is not worth doing for every program)."""
    return "\0".join(import_paths()).encode() + b"\n"


async def _run(program: str, kind: str, time_limit: float, memory_limit: int) -> tuple[TestRun, str]:
    if kind == "bwrap":
        pool = _active_pool.get()
        if pool is not None and pool.loop is asyncio.get_running_loop():
            return await pool.run(program, time_limit, memory_limit)
        async with SandboxPool(1) as pool:
            return await pool.run(program, time_limit, memory_limit)
    nonce, payload = _payload(program, kind, time_limit, memory_limit)
    directory = tempfile.mkdtemp(prefix="moa-sandbox-")
    command = (_python(), "-I", "-S", "-B", "-c", _harness_source())
    env = {**CLEAN_ENV, "HOME": directory, "TMPDIR": directory}
    group = _new_pids_cgroup()
    try:
        process = await _spawn(command, directory, env, group)
        timed_out = False
        try:
            out, err = await asyncio.wait_for(_exchange(process, payload), time_limit)
        except asyncio.TimeoutError:
            timed_out, out, err = True, b"", b""
        finally:
            _kill(process)  # the guard's process group goes with it
            await process.wait()
    finally:
        _remove_cgroup(group)
        shutil.rmtree(directory, ignore_errors=True)
    error = _last_line(err)
    if timed_out:
        return TestRun("timeout", f"killed after {time_limit:g}s", kind), error
    code = process.returncode
    return _verdict(nonce, out, kind, signal_number=-code if code < 0 else 0), error


def _last_line(err: bytes) -> str:
    return (err.decode("utf-8", "replace").strip().splitlines()[-1:] or [""])[0]


def _verdict(nonce: str, out: bytes, kind: str, signal_number: int) -> TestRun:
    """How a program ended, from what it wrote to its result pipe and the signal that ended it."""
    if nonce.encode() in out:
        return TestRun("passed", "", kind)
    text = out.decode("utf-8", "replace")
    if text.startswith("failed: "):
        return TestRun("failed", text[len("failed: "):][:DETAIL_BYTES], kind)
    if signal_number in (signal.SIGKILL, signal.SIGXCPU, signal.SIGXFSZ, signal.SIGSEGV):
        return TestRun("killed", f"killed by {signal.Signals(signal_number).name} (a memory, file-size or CPU limit)",
                       kind)
    return TestRun("failed", "the program ended before its tests completed (no pass signal)", kind)


# ------------------------------------------------------------------------- warm sandboxes (bwrap)

# The pool of warm sandboxes of the running `async with sandboxes(n)` block (see the docstring).
_active_pool: contextvars.ContextVar["SandboxPool | None"] = contextvars.ContextVar("moa_sandbox_pool", default=None)


class SandboxGone(Exception):
    """A warm sandbox ended while it ran a program (the program killed it, or bwrap failed)."""


class _Sandbox:
    def __init__(self, process, group: Path | None):
        self.process, self.group = process, group
        self.reusable = False  # True once it said it is clean after a program

    @classmethod
    async def start(cls) -> "_Sandbox":
        group = _new_pids_cgroup()
        try:
            command = (*bwrap_prefix(), _python(), "-I", "-S", "-B", "-c", _harness_source(), "serve")
            return cls(await _spawn(command, None, {}, group), group)
        except BaseException:
            _remove_cgroup(group)
            raise

    async def run(self, payload: bytes) -> tuple[str, int, bytes]:
        """Send one program; (exit|signal, number, what it wrote to its result pipe)."""
        try:
            self.process.stdin.write(b"%d\n" % len(payload) + payload)
            await self.process.stdin.drain()
            how, number, clean, size = (await self.process.stdout.readline()).split()
            how, number, size = how.decode("ascii"), int(number), int(size)
            if how not in ("exit", "signal") or not 0 <= size <= READ_LIMIT:
                raise ValueError("not a frame the harness sends")
            out = await self.process.stdout.readexactly(size)
        except (ValueError, OSError, asyncio.IncompleteReadError) as error:
            raise SandboxGone(await self._why()) from error
        self.reusable = clean == b"1"
        return how, number, out

    async def _why(self) -> str:
        self.kill()
        await self.process.wait()
        try:
            err = await asyncio.wait_for(self.process.stderr.read(READ_LIMIT), 1)
        except (asyncio.TimeoutError, OSError):
            err = b""
        return _last_line(err)

    def kill(self) -> None:
        _kill(self.process)

    async def close(self) -> None:
        self.kill()
        await self.process.wait()
        _remove_cgroup(self.group)


class SandboxPool:
    """At most `size` warm bwrap sandboxes, each running one program at a time."""

    def __init__(self, size: int):
        self.size = max(1, size)
        self.slots = asyncio.Semaphore(self.size)
        self.idle: list[_Sandbox] = []
        self.started = 0  # sandboxes started so far (a replaced one counts again)
        self.loop = None

    async def __aenter__(self) -> "SandboxPool":
        self.loop = asyncio.get_running_loop()
        return self

    async def __aexit__(self, exc_type, *exc) -> None:
        idle, self.idle = self.idle, []
        if exc_type is None:  # ended normally: each sandbox ends itself once its pipe closes
            for sandbox in idle:
                sandbox.process.stdin.close()
            try:
                await asyncio.wait_for(asyncio.gather(*(s.process.wait() for s in idle)), 1)
            except asyncio.TimeoutError:
                pass
        for sandbox in idle:
            sandbox.kill()  # all at once (a no-op for those already gone), then reaped
        for sandbox in idle:
            await sandbox.close()

    async def run(self, program: str, time_limit: float, memory_limit: int) -> tuple[TestRun, str]:
        nonce, payload = _payload(program, "bwrap", time_limit, memory_limit)
        async with self.slots:
            sandbox = None
            try:
                if self.idle:
                    sandbox = self.idle.pop()
                else:
                    self.started += 1
                    sandbox = await _Sandbox.start()
                how, number, out = await asyncio.wait_for(sandbox.run(payload), time_limit)
            except asyncio.TimeoutError:
                await sandbox.close()
                return TestRun("timeout", f"killed after {time_limit:g}s", "bwrap"), ""
            except SandboxGone as gone:
                await sandbox.close()
                error = str(gone)
                if error.startswith("bwrap:"):  # the sandbox itself did not start (say, no PIDs left)
                    return TestRun("error", f"the sandbox did not start: {error[:DETAIL_BYTES]}", "bwrap"), error
                return TestRun("failed", "the program ended its sandbox before its tests completed (no pass signal)",
                               "bwrap"), error
            except BaseException:  # cancelled mid-program: its state is unknown
                if sandbox is not None:
                    sandbox.kill()
                    await asyncio.shield(sandbox.close())
                raise
            if sandbox.reusable and sandbox.process.returncode is None:
                self.idle.append(sandbox)
            else:
                await sandbox.close()
        return _verdict(nonce, out, "bwrap", signal_number=number if how == "signal" else 0), ""


@contextlib.asynccontextmanager
async def sandboxes(size: int):
    """`async with sandboxes(n):` every bwrap program run inside the block, in this task and the
    tasks it starts, runs in one of `n` warm sandboxes; all of them are gone when the block ends."""
    async with SandboxPool(size) as pool:
        token = _active_pool.set(pool)
        try:
            yield pool
        finally:
            _active_pool.reset(token)


async def _spawn(command, cwd, env, group: Path | None = None):
    """Start the process, shielded: asyncio can hang for good when a task is cancelled while its
    subprocess is being set up, so a cancellation waits for the start, kills, then goes on."""
    spawning = asyncio.ensure_future(asyncio.create_subprocess_exec(
        *command, cwd=cwd, env=env, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, start_new_session=True,
        # The child joins its cgroup before it execs bwrap, so everything it starts is counted.
        preexec_fn=None if group is None else partial(_join_cgroup, str(group / "cgroup.procs"))))
    try:
        return await asyncio.shield(spawning)
    except asyncio.CancelledError:
        try:
            process = await spawning
        except Exception:  # noqa: BLE001 - it never started: nothing to kill
            raise asyncio.CancelledError from None
        _kill(process)
        await process.wait()
        raise


def _join_cgroup(procs: str) -> None:
    with open(procs, "w") as handle:
        handle.write(str(os.getpid()))


async def _exchange(process, payload: bytes) -> tuple[bytes, bytes]:
    """Send the payload; read at most READ_LIMIT bytes of each output, never more into memory."""
    async def feed():
        try:
            process.stdin.write(payload)
            await process.stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            process.stdin.close()

    async def read(stream):
        data = b""
        while len(data) < READ_LIMIT and (chunk := await stream.read(READ_LIMIT - len(data))):
            data += chunk
        return data

    _, out, err = await asyncio.gather(feed(), read(process.stdout), read(process.stderr))
    await process.wait()
    return out, err


def _kill(process) -> None:
    if process.returncode is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        try:
            process.kill()
        except ProcessLookupError:
            pass


@lru_cache(maxsize=1)
def _harness_source() -> str:
    return HARNESS.read_text(encoding="utf-8")


async def grade(problem: dict, answer: str, **limits) -> TestRun:
    """Run the problem's tests (`check(entry_point)`) against the code in `answer`."""
    from .extract import program_for

    return await run_program(program_for(problem, answer), **limits)

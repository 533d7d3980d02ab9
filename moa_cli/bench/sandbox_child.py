"""The child side of sandbox.py: runs one candidate program, after limiting itself.

Run as `python -I sandbox_child.py MEMORY_BYTES` in a fresh temporary directory, with the program
on stdin. Exit status 0 means the program ran to its end (every check passed); 1 means it raised;
a signal means it was killed (time, memory or file-size limit). This file imports nothing from
moa, so it starts fast and the candidate can reach nothing of moa's.

NOT a security sandbox: code that sets out to escape these guards can. They stop the accidents a
wrong answer causes: an endless loop, a runaway allocation, a stray write or delete.
"""

import builtins
import io
import os
import sys

CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def limit_resources(memory: int) -> None:
    import resource

    for which, value in ((resource.RLIMIT_AS, memory), (resource.RLIMIT_FSIZE, 16 << 20),
                         (resource.RLIMIT_CORE, 0), (resource.RLIMIT_NPROC, 1)):
        try:
            resource.setrlimit(which, (value, value))
        except (ValueError, OSError):
            pass  # e.g. NPROC below what the user already runs: the guard below still blocks forks


def isolate_network() -> bool:
    """A new, empty network namespace (only a loopback that is down), where Linux allows one."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.unshare(CLONE_NEWNET) == 0 or libc.unshare(CLONE_NEWUSER | CLONE_NEWNET) == 0
    except (OSError, AttributeError):
        return False


def refuse(name):
    def refused(*args, **kwargs):
        raise PermissionError(f"{name} is disabled in the moa bench sandbox")
    return refused


def inside(path, root) -> bool:
    try:
        real = os.path.realpath(os.fspath(path) if not isinstance(path, int) else ".")
    except TypeError:
        return False
    return real == root or real.startswith(root + os.sep)


def guard_writes(root: str) -> None:
    """Opening a file for writing outside `root` raises PermissionError."""
    real_open, real_os_open = io.open, os.open

    def open_guarded(file, mode="r", *args, **kwargs):
        if any(flag in mode for flag in "wax+") and not isinstance(file, int) and not inside(file, root):
            raise PermissionError(f"writing outside the sandbox directory is refused: {file}")
        return real_open(file, mode, *args, **kwargs)

    def os_open_guarded(path, flags, *args, **kwargs):
        if flags & WRITE_FLAGS and not inside(path, root):
            raise PermissionError(f"writing outside the sandbox directory is refused: {path}")
        return real_os_open(path, flags, *args, **kwargs)

    builtins.open = io.open = open_guarded
    os.open = os_open_guarded


def disable_destructive_calls(network_isolated: bool) -> None:
    import shutil
    import subprocess

    for name in ("kill", "killpg", "system", "popen", "fork", "forkpty", "putenv", "unsetenv", "remove",
                 "unlink", "removedirs", "rmdir", "rename", "renames", "replace", "truncate", "link",
                 "symlink", "chmod", "fchmod", "lchmod", "chown", "fchown", "lchown", "chroot", "chdir",
                 "fchdir", "mkfifo", "mknod", "setuid", "setgid", "seteuid", "setegid", "setreuid",
                 "setregid", "setresuid", "setresgid", "execv", "execve", "execl", "execle", "execlp",
                 "execlpe", "execvp", "execvpe", "spawnl", "spawnle", "spawnv", "spawnve", "posix_spawn",
                 "posix_spawnp", "_exit"):
        if hasattr(os, name):
            setattr(os, name, refuse(f"os.{name}"))
    for name in ("rmtree", "move", "chown", "copytree"):
        setattr(shutil, name, refuse(f"shutil.{name}"))
    for name in ("Popen", "run", "call", "check_call", "check_output", "getoutput", "getstatusoutput"):
        setattr(subprocess, name, refuse(f"subprocess.{name}"))
    if not network_isolated:
        import socket

        for name in ("socket", "create_connection", "create_server", "socketpair", "fromfd"):
            setattr(socket, name, refuse(f"socket.{name}"))
    # Modules that would undo the limits: importing them now fails.
    for name in ("resource", "ctypes", "_ctypes", "multiprocessing", "_posixsubprocess", "signal"):
        sys.modules[name] = None


def main() -> int:
    memory = int(sys.argv[1])
    program = sys.stdin.read()
    root = os.path.realpath(os.getcwd())
    limit_resources(memory)
    isolated = isolate_network()
    sys.stderr.write(f"moa-sandbox: network {'isolated' if isolated else 'NOT isolated (no namespace)'}\n")
    sys.stderr.flush()
    guard_writes(root)
    disable_destructive_calls(isolated)
    try:
        exec(compile(program, "<candidate>", "exec"), {"__name__": "__candidate__"})
    except BaseException as error:  # noqa: BLE001 - whatever the candidate raised is a failure
        sys.stderr.write(f"moa-sandbox: failed: {type(error).__name__}: {error}\n")
        sys.stderr.flush()
        return 1
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Child processes that never outlive the process that started them.

The experiment CLI starts workers, a worker starts a papermill kernel or a script; each of them
trains for hours. If the parent goes away (Ctrl-C, ``kill``, ``kill -9``, an OOM kill, a SLURM
cancel) its children must go too, or an orphan keeps training, holding claims and the GPU.

* :func:`bound_command` prefixes a command with a tiny Python shim that asks Linux to send the
  child a signal when its parent dies (``prctl(PR_SET_PDEATHSIG)``, kept across ``exec``) and then
  execs the real command. This is the only protection that survives SIGKILL of the parent. On other
  systems the command is returned unchanged (there the clean-up paths below still run).
* :func:`on_termination` turns SIGTERM (and SIGHUP) into :class:`Interrupted`, a
  ``KeyboardInterrupt``, so that ``finally`` blocks stop children and write provenance exactly as
  for Ctrl-C.
* :func:`stop` ends one child: SIGTERM, a grace period, then SIGKILL.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

__all__ = ["Interrupted", "bound_command", "on_termination", "stop"]

# Runs in the child before the real command: set the parent-death signal, then make sure the
# parent did not die before that (the race PR_SET_PDEATHSIG alone leaves open), then exec.
_SHIM = (
    "import ctypes,os,sys\n"
    "ctypes.CDLL(None,use_errno=True).prctl(1,int(sys.argv[2]),0,0,0)\n"  # 1 = PR_SET_PDEATHSIG
    "os.getppid()==int(sys.argv[1]) or sys.exit(1)\n"
    "os.execvp(sys.argv[3],sys.argv[3:])\n"
)


class Interrupted(KeyboardInterrupt):
    """The process received SIGTERM or SIGHUP (see :func:`on_termination`); ``signum`` says which."""

    def __init__(self, signum: int = signal.SIGTERM):
        super().__init__(f"received {signal.Signals(signum).name}")
        self.signum = int(signum)


def bound_command(cmd: list[str], sig: int = signal.SIGKILL) -> list[str]:
    """``cmd`` wrapped so that the started process receives ``sig`` when the process (strictly:
    the thread) that starts it dies. Linux only; elsewhere ``cmd`` itself."""
    if not sys.platform.startswith("linux"):
        return list(cmd)
    return [sys.executable, "-c", _SHIM, str(os.getpid()), str(int(sig)), *map(str, cmd)]


def _raise(signum, _frame):
    raise Interrupted(signum)


def on_termination() -> None:
    """From now on SIGTERM and SIGHUP raise :class:`Interrupted` in the main thread (call it from
    the main thread of a command-line entry point)."""
    for sig in (signal.SIGTERM, getattr(signal, "SIGHUP", None)):
        if sig is not None:
            signal.signal(sig, _raise)


def stop(proc: subprocess.Popen, grace: float = 5.0) -> int | None:
    """Stop ``proc``: SIGTERM, then SIGKILL if it is still there after ``grace`` seconds. Returns
    its exit status. Safe to call on a process that already ended."""
    if proc.poll() is None:
        try:
            proc.terminate()
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
        except ProcessLookupError:
            pass
    try:
        return proc.wait(grace)
    except subprocess.TimeoutExpired:
        return None

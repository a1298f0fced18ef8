"""Per-run claims: which worker trains which run, when many share one results folder.

Workers (local processes, SLURM array tasks, GNU parallel jobs) run the same command on the same
folder. Before training a run a worker *claims* it: it creates ``claims/<run_id>.lock`` with
``O_CREAT | O_EXCL``, which exactly one creator wins (atomic on local file systems and on NFS v3
and later). The file holds the claimer's host, pid, start time and a random token. While the run
trains, a background thread touches the file's mtime every ``interval`` seconds: the heartbeat.

A claim is *stale* when its heartbeat is older than ``timeout`` (the holder died on another
machine, or hangs), or at once when its holder is a process of this host that no longer exists.
A stale claim is taken over in three atomic steps, so that only one taker wins:

1. exclusive-create a guard ``<run_id>.takeover-<token>`` named after the stale claim's token
   (a second taker of the same stale claim fails here);
2. check that the lock still carries that token, and rename it aside
   (``<run_id>.lock.stale-<token>``, kept for inspection);
3. exclusive-create a fresh lock (which a newcomer may win instead: it then holds the run).

The heartbeat compares against the file system's clock (mtime) and this machine's clock, so
machines sharing a folder need clocks within a fraction of ``timeout`` of each other (NTP gives
milliseconds). A holder that was merely paused for longer than ``timeout`` loses its claim: its
heartbeat notices, warns, and the run may then be trained twice (its record is written
atomically either way, so nothing is corrupted).
"""

from __future__ import annotations

import atexit
import datetime as _dt
import json
import os
import re
import socket
import sys
import threading
import time
import uuid
import weakref
from dataclasses import dataclass
from pathlib import Path

from nclib.files import pid_alive

__all__ = ["DEFAULT_TIMEOUT", "Holder", "Claims", "claim_timeout_from_env"]

_RUN_ID = re.compile(r"[A-Za-z0-9._-]+")

#: Seconds without a heartbeat after which a claim counts as abandoned.
DEFAULT_TIMEOUT = 120.0


def claim_timeout_from_env(default: float = DEFAULT_TIMEOUT) -> float:
    """``$NCLIB_CLAIM_TIMEOUT`` in seconds (how the CLI hands its ``--claim-timeout`` to the
    notebook kernels), else ``default``."""
    text = os.environ.get("NCLIB_CLAIM_TIMEOUT", "")
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ValueError(f"NCLIB_CLAIM_TIMEOUT must be a positive number of seconds, got {text!r}; unset it "
                         f"for the default of {default:g} s")
    return value




@dataclass
class Holder:
    """Who holds a claim, as read from its lock file; ``age_s`` is the time since its heartbeat."""

    host: str
    pid: int
    started_utc: str
    token: str
    age_s: float

    def describe(self) -> str:
        """``host:pid (heartbeat N s ago)``, for progress messages."""
        return f"{self.host}:{self.pid} (heartbeat {self.age_s:.0f} s ago)"


_LIVE_BOARDS: "weakref.WeakSet[Claims]" = weakref.WeakSet()


@atexit.register
def _release_at_exit():  # a clean interpreter exit never leaves claims behind
    for board in list(_LIVE_BOARDS):
        board.release_all()


class Claims:
    """The claims of one results folder (``folder``, created on first use). ``timeout``: seconds
    without heartbeat before a claim is stale; ``interval``: seconds between heartbeats (default
    ``min(10, timeout / 4)``, so a live holder beats at least four times per timeout)."""

    def __init__(self, folder, timeout: float = DEFAULT_TIMEOUT, interval: float | None = None):
        if not (isinstance(timeout, (int, float)) and timeout > 0):
            raise ValueError(f"claim timeout must be a positive number of seconds, got {timeout!r}")
        self.folder = Path(folder)
        self.timeout = float(timeout)
        self.interval = float(interval) if interval is not None else min(10.0, self.timeout / 4)
        if not 0 < self.interval < self.timeout:
            raise ValueError(f"heartbeat interval must lie in (0, timeout = {self.timeout:g}), got {self.interval:g}")
        self.host = socket.gethostname()
        self._held: dict[str, str] = {}  # run_id → token of the lock file we created
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        _LIVE_BOARDS.add(self)

    # -- reading -----------------------------------------------------------------------------

    def path(self, run_id: str) -> Path:
        """The lock file of ``run_id`` (a run id is a plain file name: no folder, no '..')."""
        if not isinstance(run_id, str) or not _RUN_ID.fullmatch(run_id) or run_id in (".", ".."):
            raise ValueError(f"a claim needs a run id made of letters, digits, '.', '_' and '-' (no folder part), "
                             f"got {run_id!r}")
        return self.folder / f"{run_id}.lock"

    def holder(self, run_id: str) -> Holder | None:
        """The current holder of ``run_id``, or None when unclaimed. A lock whose content is not
        readable yet (its creator is between create and write, or died there) has an empty token
        and pid 0, so only its heartbeat age can make it stale."""
        p = self.path(run_id)
        try:
            age = time.time() - p.stat().st_mtime
            text = p.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError):  # a folder, binary junk, an unreadable file: a lock nobody can own
            return Holder("?", 0, "?", "", age)
        try:
            d = json.loads(text)
            return Holder(str(d["host"]), int(d["pid"]), str(d["started_utc"]), str(d["token"]), age)
        except (ValueError, KeyError, TypeError):
            return Holder("?", 0, "?", "", age)

    def is_stale(self, h: Holder) -> bool:
        """Heartbeat older than the timeout, or the holder is a dead process of this host."""
        if h.age_s > self.timeout:
            return True
        return h.host == self.host and h.pid > 0 and not pid_alive(h.pid)

    def held(self) -> list[str]:
        """The run ids this object holds now."""
        with self._lock:
            return sorted(self._held)

    # -- claiming ----------------------------------------------------------------------------

    def claim(self, run_id: str) -> bool:
        """Claim ``run_id``: True when this object now holds it (fresh, already held, or taken
        over from a stale holder), False when a live holder has it."""
        with self._lock:
            if run_id in self._held:
                return True
        if self._create(run_id):
            return True
        h = self.holder(run_id)
        if h is None:  # released between our create and our read: one more try
            return self._create(run_id)
        return self.is_stale(h) and self._take_over(run_id, h)

    def _create(self, run_id: str) -> bool:
        self.folder.mkdir(parents=True, exist_ok=True)
        token = uuid.uuid4().hex
        try:
            fd = os.open(self.path(run_id), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({"host": self.host, "pid": os.getpid(), "token": token, "run_id": run_id,
                       "started_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}, f)
            f.flush()
            os.fsync(f.fileno())
        with self._lock:
            self._held[run_id] = token
            if self._thread is None:
                self._thread = threading.Thread(target=self._beat, name="nclib-claims-heartbeat", daemon=True)
                self._thread.start()
        return True

    def _take_over(self, run_id: str, stale: Holder) -> bool:
        guard = self.folder / f"{run_id}.takeover-{stale.token or 'unreadable'}"
        try:
            os.close(os.open(guard, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        except FileExistsError:
            try:  # a taker that died holding the guard must not block the run for ever
                if time.time() - guard.stat().st_mtime > self.timeout:
                    guard.unlink(missing_ok=True)
            except FileNotFoundError:
                pass
            return False
        try:
            now = self.holder(run_id)
            if now is None:
                return self._create(run_id)
            if now.token != stale.token or not self.is_stale(now):
                return False  # someone else took it over before us, or the holder came back
            try:
                os.rename(self.path(run_id), self.folder / f"{run_id}.lock.stale-{stale.token or uuid.uuid4().hex}")
            except FileNotFoundError:
                pass
            print(f"claims: taking over {run_id} from {stale.describe()}", file=sys.stderr, flush=True)
            return self._create(run_id)
        finally:
            guard.unlink(missing_ok=True)

    def release(self, run_id: str) -> None:
        """Give up ``run_id`` (after its record is written): the lock file goes, if still ours."""
        with self._lock:
            token = self._held.pop(run_id, None)
        if token is None:
            return
        h = self.holder(run_id)
        if h is not None and h.token == token:
            self.path(run_id).unlink(missing_ok=True)

    def release_all(self) -> None:
        """Release every claim this object holds."""
        for run_id in self.held():
            self.release(run_id)

    # -- heartbeat ---------------------------------------------------------------------------

    def _beat(self) -> None:
        """Touch every held lock each ``interval`` s; stop when nothing is held. A lock that now
        carries another token was taken over (we were silent too long): forget it and warn."""
        while True:
            time.sleep(self.interval)
            with self._lock:
                if not self._held:
                    self._thread = None
                    return
                held = dict(self._held)
            for run_id, token in held.items():
                h = self.holder(run_id)
                if h is not None and h.token == token:
                    try:
                        os.utime(self.path(run_id))
                        continue
                    except FileNotFoundError:
                        pass
                with self._lock:
                    if self._held.get(run_id) == token:
                        del self._held[run_id]
                        print(f"claims: lost the claim on {run_id} (silent for more than {self.timeout:g} s, "
                              "taken over); the run may be trained twice", file=sys.stderr, flush=True)

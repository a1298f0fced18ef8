"""Files that a kill cannot leave half-written: atomic text, JSON and torch writes, and the
temporaries' names that say which process wrote them.

Every write goes to a temporary in the destination's folder, is flushed to disk and then renamed
over the destination, so that a reader sees the old file or the new one, never a partial one. A
temporary is named ``.<name>.w-<host>-<pid>.<tag>.tmp`` after its writer, so that the run store
can remove at once those of a writer that died on this host (:func:`written_by_dead_process`)
instead of waiting until they are old.
"""

from __future__ import annotations

import errno
import json
import math
import os
import re
import signal
import socket
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path

import torch

__all__ = ["HOST", "pid_alive", "written_by_dead_process", "signals_held", "atomic_write_text", "atomic_write_json",
           "atomic_torch_save", "to_jsonable"]

# Temporaries name their writer (host and pid), so that those of a writer that died on this host
# (a killed worker, mid-write) are removed at once rather than when they are old (nclib.records).
HOST = re.sub(r"[^A-Za-z0-9-]", "_", socket.gethostname())
WRITER_IN_NAME = re.compile(r"\.w-(?P<host>[A-Za-z0-9_-]*)-(?P<pid>\d+)\.[^.]*\.tmp$")


def written_by_dead_process(temporary: Path) -> bool:
    """Whether the temporary's name says it was written by a process of this host that is gone."""
    m = WRITER_IN_NAME.search(temporary.name)
    if m is None or m["host"] != HOST:
        return False  # an older name, or another host's writer: only its age can tell
    return not pid_alive(int(m["pid"]))


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` of this machine exists and is not a zombie (dead, not yet reaped)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    try:  # Linux: the state letter follows the parenthesised command name
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()
_HELD_SIGNALS = tuple(s for s in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s)


@contextmanager
def signals_held():
    """Hold SIGINT, SIGTERM and SIGHUP until the block ends, then act on them as before.

    A write takes milliseconds; an interrupt that lands inside it (a stopped sweep's second signal,
    say) would otherwise raise between creating the temporary and the cleanup that guards it, and
    leave an empty temporary in the results folder. Held, the signal's own handler runs once the
    write is complete. Outside the main thread (where Python runs no handlers) it does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    previous = {}
    try:
        for s in _HELD_SIGNALS:
            if signal.getsignal(s) is None:  # a handler installed outside Python: cannot restore it
                continue
            previous[s] = signal.signal(s, lambda signum, frame: pending.append(signum))
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        for signum in dict.fromkeys(pending):  # each signal once, in the order it came
            handler = previous[signum]
            if callable(handler):
                handler(signum, None)
            elif handler != signal.SIG_IGN:  # the default action (or a handler set outside Python)
                signal.raise_signal(signum)


def atomic_write_text(path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically: a temporary file in the same folder, fsync, rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with signals_held():
        return _write_text_via_temporary(path, text)


def _write_text_via_temporary(path: Path, text: str) -> Path:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.w-{HOST}-{os.getpid()}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp makes 0600; a record is shared with other users and workers like any file (umask)
        os.fchmod(fd, 0o666 & ~_UMASK)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES):
            raise OSError(exc.errno, f"cannot write {path}: {exc.strerror}"
                          + (" (the disk is full: free space, then rerun; finished runs are kept)"
                             if exc.errno in (errno.ENOSPC, errno.EDQUOT) else "")) from exc
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def to_jsonable(obj):
    """Plain JSON values: tensors and numpy arrays become lists, non-finite floats become None
    (strict JSON has no NaN), tuples become lists, dataclass-like objects need ``to_dict``."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, torch.Tensor):
        return to_jsonable(obj.detach().cpu().tolist())
    if hasattr(obj, "tolist") and not isinstance(obj, (str, bytes)):
        return to_jsonable(obj.tolist())
    if isinstance(obj, bool) or obj is None or isinstance(obj, (int, str)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if hasattr(obj, "to_dict"):
        return to_jsonable(obj.to_dict())
    raise ValueError(f"cannot store a value of type {type(obj).__name__} in a JSON record")


def atomic_write_json(path, obj) -> Path:
    """Write ``obj`` as indented strict JSON, atomically (see :func:`atomic_write_text`)."""
    return atomic_write_text(path, json.dumps(to_jsonable(obj), indent=1, sort_keys=True, allow_nan=False) + "\n")


def atomic_torch_save(obj, path) -> Path:
    """``torch.save`` atomically (a checkpoint): a temporary named like the others, fsync, rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.w-{HOST}-{os.getpid()}.ckpt.tmp")
    with signals_held():
        try:
            with open(tmp, "wb") as f:
                torch.save(obj, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    return path

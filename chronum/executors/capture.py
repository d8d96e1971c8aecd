"""While a run with in-process steps is in progress, file descriptors 1 and 2 pass the masker.

``print()`` in a ``call:`` step reaches its step through ``sys.stdout`` (``python.py``), but
much output does not go through ``sys.stdout``: a thread the function starts, a
``logging.StreamHandler`` made at import time (it holds the ``sys.stderr`` of then), a child
started with ``subprocess.run``, ``os.write(1, ...)``. All of it ends on the process's file
descriptors 1 and 2, so while a run is in progress those point at pipes that threads here read:

- when exactly one in-process step is running, what arrives goes to that step's log, like its
  ``print()`` (so masked, and shown as the step's output);
- otherwise it is the run's own output: masked, written to what fd 1/2 were before (the
  terminal, a CI log, the notebook kernel's own capture) and to the run's log
  (``logs/<run>/(run).log`` beside the step logs).

Chronum's own output written from the event loop's thread (the terminal printer, warnings) is
already masked; it goes straight to the saved descriptors (``terminal``), not into the pipes,
so it is never taken for a step's output.

One capture serves every run in progress in the process (two notebook runs at once): it masks
with every run's secrets and writes unattributed output to each run's log. It ends with the
last run, on every path (success, failure, cancel), and fds 1 and 2 are put back.
"""

from __future__ import annotations

import codecs
import contextlib
import os
import select
import sys
import threading
from collections.abc import Callable
from typing import IO, Any, Protocol, cast

__all__ = ["Mask", "begin", "enter_call", "leave_call", "pending", "route", "settle", "terminal"]

#: Written into a pipe to learn when the reader has handled everything written before it.
_FENCE = "\x00chronum-fence\x00"
#: How long ``settle`` waits for the reader (a terminal that does not read can block it).
_SETTLE_TIMEOUT = 1.0
_STREAMS = {1: "stdout", 2: "stderr"}
#: Unattributed output longer than this without a newline is written in pieces.
_MAX_LINE = 64 * 1024


class Mask(Protocol):
    """What the capture needs of the engine's ``Masker``."""

    def __call__(self, text: str) -> str: ...

    def split(self, text: str) -> tuple[str, str]: ...


class _Output(Protocol):
    closed: bool

    def write(self, stream: str, text: str) -> None: ...


#: The outputs of the in-process calls running now, and the one of them when there is exactly
#: one (a reader thread looks at ``_only`` without a lock: it is replaced, never mutated).
_calls: set[_Output] = set()
_only: _Output | None = None
_calls_lock = threading.Lock()


def enter_call(output: _Output) -> None:
    global _only
    with _calls_lock:
        _calls.add(output)
        _only = next(iter(_calls)) if len(_calls) == 1 else None


def leave_call(output: _Output) -> None:
    global _only
    with _calls_lock:
        _calls.discard(output)
        _only = next(iter(_calls)) if len(_calls) == 1 else None


class _Client:
    __slots__ = ("loop_thread", "mask", "run_log")

    def __init__(self, mask: Mask, run_log: Callable[[str, str], None]) -> None:
        self.mask = mask
        self.run_log = run_log
        self.loop_thread = threading.get_ident()


class _Terminal:
    """A text stream on a saved descriptor: where the terminal (or kernel) really is."""

    def __init__(self, fd: int, like: IO[str] | None) -> None:
        self._fd = fd
        self.encoding = getattr(like, "encoding", None) or "utf-8"
        self._like = like

    def write(self, text: str) -> int:
        _write_all(self._fd, text.encode(self.encoding, "replace"))
        return len(text)

    def flush(self) -> None:
        pass

    def fileno(self) -> int:
        return self._fd

    def isatty(self) -> bool:
        return os.isatty(self._fd)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._like, name)


def _write_all(fd: int, data: bytes) -> None:
    with contextlib.suppress(OSError):  # a closed terminal: nobody is reading any more
        while data:
            written = os.write(fd, data)
            data = data[written:]


def _flush_python_streams() -> None:
    """Text written through Python's own stdout/stderr objects but still in their buffers."""
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        if stream is not None:
            with contextlib.suppress(Exception):
                stream.flush()


class _Capture:
    def __init__(self) -> None:
        self.clients: list[_Client] = []
        self.saved: dict[int, int] = {}
        self._read_ends: dict[int, int] = {}
        self._busy = dict.fromkeys(_STREAMS, False)
        self._fences_seen = dict.fromkeys(_STREAMS, 0)
        self._fences_sent = dict.fromkeys(_STREAMS, 0)
        self._fenced = threading.Condition()
        self._partial = {"stdout": "", "stderr": ""}
        self._lock = threading.Lock()
        self._terminals: dict[int, _Terminal] = {}
        self._wake_r, self._wake_w = os.pipe()
        self._threads: list[threading.Thread] = []

    def open(self) -> bool:
        _flush_python_streams()
        for fd in _STREAMS:
            try:
                saved = os.dup(fd)
            except OSError:  # no such descriptor (a daemon, pythonw): nothing to capture
                continue
            read_end, write_end = os.pipe()
            os.dup2(write_end, fd)  # inheritable: children started by a step write here too
            os.close(write_end)
            self.saved[fd], self._read_ends[fd] = saved, read_end
            thread = threading.Thread(target=self._read, args=(fd,), daemon=True,
                                      name=f"chronum-capture-{fd}")
            self._threads.append(thread)
            thread.start()
        return bool(self.saved)

    def close(self) -> None:
        self.settle()
        for fd, saved in self.saved.items():
            os.dup2(saved, fd)
        os.write(self._wake_w, b"x")
        for thread in self._threads:
            thread.join(_SETTLE_TIMEOUT)
        with self._lock:
            for stream, rest in self._partial.items():
                if rest:
                    self._unattributed(stream, rest, end=True)
                    self._partial[stream] = ""
        for fd in (*self._read_ends.values(), *self.saved.values(), self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    # -- reading -------------------------------------------------------------------------

    def _read(self, fd: int) -> None:
        stream, read_end = _STREAMS[fd], self._read_ends[fd]
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        held = ""
        poller = select.poll()
        poller.register(read_end, select.POLLIN)
        poller.register(self._wake_r, select.POLLIN)
        while True:
            ready = dict(poller.poll())
            if read_end not in ready:
                break
            self._busy[fd] = True
            try:
                data = os.read(read_end, 65536)
            except OSError:
                data = b""
            if not data:
                self._busy[fd] = False
                break
            text, held, fences = _take_fences(held + decoder.decode(data))
            if text:
                self.feed(stream, text)
            self._busy[fd] = False
            if fences:
                with self._fenced:
                    self._fences_seen[fd] += fences
                    self._fenced.notify_all()
        if held:
            self.feed(stream, held)

    def feed(self, stream: str, text: str) -> None:
        """Output that no step's ``sys.stdout`` took: to the one running in-process step, else
        the run's own output."""
        only = _only
        if only is not None and not only.closed:
            only.write(stream, text)
        else:
            self.unattributed(stream, text)

    def pending(self) -> bool:
        """Whether a pipe may hold output not handled yet (one ``poll`` for both pipes)."""
        if any(self._busy.values()):
            return True
        poller = select.poll()  # one per call: a poll object must not be polled by two threads
        for read_end in self._read_ends.values():
            poller.register(read_end, select.POLLIN)
        return bool(poller.poll(0))

    def settle(self) -> bool:
        """Wait until everything written to fds 1 and 2 before now has been handled."""
        _flush_python_streams()
        if not self.pending():
            return False
        targets = {}
        for fd in self._read_ends:
            with self._fenced:
                self._fences_sent[fd] += 1
                targets[fd] = self._fences_sent[fd]
            _write_all(fd, _FENCE.encode())
        with self._fenced:
            self._fenced.wait_for(
                lambda: all(self._fences_seen[fd] >= n for fd, n in targets.items()),
                timeout=_SETTLE_TIMEOUT)
        return True

    # -- writing -------------------------------------------------------------------------

    def terminal(self, fd: int, like: IO[str] | None) -> _Terminal:
        term = self._terminals.get(fd)
        if term is None:
            term = self._terminals[fd] = _Terminal(self.saved[fd], like)
        return term

    def mask(self, text: str) -> str:
        for client in self.clients:
            text = client.mask(text)
        return text

    def split(self, text: str) -> tuple[str, str]:
        cut = len(text)
        for client in self.clients:
            cut = min(cut, len(client.mask.split(text)[0]))
        return text[:cut], text[cut:]

    def unattributed(self, stream: str, text: str) -> None:
        with self._lock:
            *lines, rest = (self._partial[stream] + text).split("\n")
            for line in lines:
                self._unattributed(stream, line, end=True)
            if len(rest) > _MAX_LINE:
                done, rest = self.split(rest)
                if done:
                    self._unattributed(stream, done, end=False)
            self._partial[stream] = rest

    def _unattributed(self, stream: str, line: str, *, end: bool) -> None:
        masked = self.mask(line)
        fd = 1 if stream == "stdout" else 2
        saved = self.saved.get(fd)
        if saved is not None:
            _write_all(saved, (masked + "\n" if end else masked).encode("utf-8", "replace"))
        for client in self.clients:
            with contextlib.suppress(Exception):  # the run's log is best effort
                client.run_log(stream, masked)


def _take_fences(text: str) -> tuple[str, str, int]:
    """``text`` without fence marks, a held tail that may begin one, and how many it had."""
    if "\x00" not in text:
        return text, "", 0
    count = text.count(_FENCE)
    if count:
        text = text.replace(_FENCE, "")
    for k in range(len(_FENCE) - 1, 0, -1):
        if text.endswith(_FENCE[:k]):
            return text[:-k], text[-k:], count
    return text, "", count


_state: _Capture | None = None
_state_lock = threading.Lock()


def begin(mask: Mask, run_log: Callable[[str, str], None]) -> Callable[[], None]:
    """Capture fds 1 and 2 for one run (or join the capture already running); call the result
    when the run ends."""
    global _state
    client = _Client(mask, run_log)
    with _state_lock:
        if _state is None:
            capture = _Capture()
            if not capture.open():
                capture.close()
                return lambda: None
            _state = capture
        _state.clients.append(client)

    def end() -> None:
        global _state
        with _state_lock:
            if _state is None or client not in _state.clients:
                return
            if len(_state.clients) > 1:
                _state.settle()
                _state.clients.remove(client)
                return
            capture, _state = _state, None
        try:
            capture.close()
        finally:
            capture.clients.clear()

    return end


def route(stream: str, text: str, real: IO[str]) -> bool:
    """``sys.stdout``/``sys.stderr`` written outside any step while a capture is on; False when
    there is none (write to ``real`` as usual).

    From an event loop running a run: Chronum's own output (or a subscriber's), masked and
    straight to the terminal. From any other thread: a thread a step started, handled as if
    it had been written to fd 1/2.
    """
    capture = _state
    if capture is None:
        return False
    me = threading.get_ident()
    if any(client.loop_thread == me for client in capture.clients):
        terminal(real).write(capture.mask(text))
    else:
        capture.feed(stream, text)
    return True


def terminal(stream: IO[str]) -> IO[str]:
    """Where ``stream`` really writes: while fds 1/2 are captured, a stream on the one they
    pointed at before, for a stream that writes to fd 1 or 2; otherwise ``stream`` itself."""
    capture = _state
    if capture is None:
        return stream
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return stream
    if fd not in capture.saved:
        return stream
    with contextlib.suppress(Exception):
        stream.flush()  # what it buffered before the capture began goes first
    return cast(IO[str], capture.terminal(fd, stream))


def pending() -> bool:
    """Whether output written to fds 1 and 2 so far may not have reached its step yet: one
    ``poll``, so a caller on the event loop asks before it hands ``settle`` to a thread."""
    capture = _state
    if capture is None:
        return False
    _flush_python_streams()
    return capture.pending()


def settle() -> bool:
    """Wait until the output written to fds 1 and 2 so far has reached its step; True when
    there was some to wait for."""
    capture = _state
    return capture.settle() if capture is not None else False

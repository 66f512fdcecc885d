"""One object per process: the HTTP client, the delivery engine and the outbox each own
threads, which a forked child (a Celery pool process) does not inherit with the object."""

import os
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")

_UNMADE = object()


class PerProcess(Generic[T]):
    """Made by `make` on first use in each process (with the arguments of that first `get`); a
    forked child makes its own instead of using the copy of its parent's (whose threads did not
    come along).

    A fork is told by `os.register_at_fork`, not by comparing `os.getpid()` at each `get`: the
    engine's event loop asks for the HTTP client at every request, and getpid is a system call."""

    def __init__(self, make: Callable[..., T]) -> None:
        self._make = make
        self._lock = threading.Lock()
        self._value: object = _UNMADE
        os.register_at_fork(after_in_child=self._forked)

    def _forked(self) -> None:
        # The copy's lock may have been held by a parent's thread that the child does not have.
        self._lock = threading.Lock()
        self._value = _UNMADE

    def get(self, *args) -> T:
        value = self._value
        if value is _UNMADE:
            with self._lock:
                if self._value is _UNMADE:
                    self._value = self._make(*args)
                value = self._value
        return value

    def current(self) -> T | None:
        """This process's object if it was made, without making one."""
        value = self._value
        return None if value is _UNMADE else value

    def forget(self) -> None:
        """The next `get` makes a new one."""
        with self._lock:
            self._value = _UNMADE

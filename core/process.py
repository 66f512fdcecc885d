"""One object per process: the HTTP client, the delivery engine and the outbox each own
threads, which a forked child (a Celery pool process) does not inherit with the object."""

import os
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class PerProcess(Generic[T]):
    """Made by `make` on first use in each process (with the arguments of that first `get`); a
    forked child makes its own instead of using the copy of its parent's (whose threads did not
    come along)."""

    def __init__(self, make: Callable[..., T]) -> None:
        self._make = make
        self._lock = threading.Lock()
        self._value: T | None = None
        self._pid: int | None = None

    def get(self, *args) -> T:
        if self._pid != os.getpid():
            with self._lock:
                if self._pid != os.getpid():
                    self._value, self._pid = self._make(*args), os.getpid()
        return self._value

    def current(self) -> T | None:
        """This process's object if it was made, without making one."""
        return self._value if self._pid == os.getpid() else None

    def forget(self) -> None:
        """The next `get` makes a new one."""
        with self._lock:
            self._value = self._pid = None

"""Ports for tests that need nothing to answer: never a fixed number (something may listen there on
another machine), but one this process holds bound without listening, so a connection to it is
refused for as long as the test runs."""

import socket
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def closed_port() -> Iterator[int]:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))  # bound, never listening: the kernel refuses connections to it
        yield held.getsockname()[1]

"""PerProcess: one object per process, and a forked child makes its own."""

import os

from core.process import PerProcess


def test_the_object_is_made_once_with_the_first_gets_arguments():
    made = []
    one = PerProcess(lambda *args: made.append(args) or object())
    first = one.get("a")
    assert one.get("b") is first
    assert made == [("a",)]
    assert one.current() is first
    one.forget()
    assert one.current() is None
    assert one.get("c") is not first
    assert made == [("a",), ("c",)]


def test_a_forked_child_makes_its_own_and_the_parent_keeps_its_own():
    one = PerProcess(lambda: os.getpid())
    assert one.get() == os.getpid()
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # the child: what it had before making its own, then its own
        try:
            os.write(write, f"{one.current()} {one.get()}".encode())
        finally:
            os._exit(0)
    os.close(write)
    os.waitpid(child, 0)
    with os.fdopen(read) as answer:
        before, made = answer.read().split()
    assert before == "None"
    assert int(made) == child
    assert one.get() == os.getpid()

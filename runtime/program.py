"""How every command-line program of this project ends when its reader goes away.

`paxos explain 6 --json | head` closes the pipe before the output is all written: that is the
reader having had enough, not an error, so it ends quietly with exit 0 and no traceback (and no
second error when the interpreter flushes stdout at exit). `paxos` itself and the harness's
commands it runs as their own programs (`paxos scenario`, `nemesis`, `bench`, `faults`) share it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable


def quiet_on_broken_pipe(main: Callable[[], int]) -> int:
    try:
        return main()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 0

"""A HiGHS instance that prints nothing: the CLI's last stdout line is a contract."""

from __future__ import annotations

import os
import sys


def new_highs():
    # highspy >= 1.16 prints its banner from the constructor, before output_flag can be set, and
    # from C++ straight to file descriptor 1; silence the fd for the construction only.
    import highspy

    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        h = highspy.Highs()
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)
    h.setOptionValue("output_flag", False)
    return h

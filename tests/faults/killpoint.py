"""Run one stage's library call in this process and SIGKILL it at the moment of its Nth write.

Used by the fault-injection tests as ``python tests/faults/killpoint.py CODE``: before ``CODE``
runs, the write primitives are wrapped so that the process kills itself (SIGKILL: no ``finally``,
no ``except``, no atexit, exactly what the OOM killer or a lost node does) right before the Nth
matching write becomes visible:

- ``FAULT_ON=replace``: ``os.replace`` whose target path matches the regular expression ``FAULT_MATCH``. Every local
  lake write (``LocalLake.write_bytes``, scoring's streamed files, the CLI's output file) ends
  with one: the bytes are on disk in a hidden temporary file, the rename has not happened.
- ``FAULT_ON=commit``: ``sqlalchemy.orm.Session.commit``, after the statements were sent to the
  database and before the transaction commits (the registry's alias and history rows).

``FAULT_AT=N`` (1-based) picks the write; ``FAULT_AT=0`` only counts. Every matching write is
appended to ``FAULT_LOG`` (one line each) before it happens, so the parent sees how many there
were and what the killed one was.
"""

from __future__ import annotations

import os
import re
import signal
import sys

ON = os.environ.get("FAULT_ON", "replace")
AT = int(os.environ.get("FAULT_AT", "0"))
MATCH = re.compile(os.environ.get("FAULT_MATCH", ""))
LOG = os.environ["FAULT_LOG"]
_seen = 0


def _reached(label: str) -> None:
    global _seen
    _seen += 1
    with open(LOG, "a") as handle:
        handle.write(f"{_seen}\t{label}\n")
    if _seen == AT:
        os.kill(os.getpid(), signal.SIGKILL)


if ON == "replace":
    _real_replace = os.replace

    def _replace(src, dst, *args, **kwargs):
        if MATCH.search(str(dst)):
            _reached(str(dst))
        return _real_replace(src, dst, *args, **kwargs)

    os.replace = _replace
elif ON == "commit":
    from sqlalchemy.orm import Session

    _real_commit = Session.commit

    def _commit(self, *args, **kwargs):
        self.flush()  # the statements reach the database inside the open transaction
        _reached("Session.commit")
        return _real_commit(self, *args, **kwargs)

    Session.commit = _commit
else:
    raise SystemExit(f"FAULT_ON must be replace or commit, not {ON!r}")

exec(compile(sys.argv[1], "<stage>", "exec"), {"__name__": "__stage__"})

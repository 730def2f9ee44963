"""Run by ``test_cli.py``: ``python cli_stall_worker.py READY AT SLEEP_S mmssl-args...`` runs the
CLI with DGI's forward stalled from its ``AT``-th call on (it touches ``READY``, then sleeps
``SLEEP_S`` seconds a step), so the test can signal the run at a known step."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from mmssl.cli import main
from mmssl.graph.methods.dgi import DGI

if __name__ == "__main__":
    ready, at, sleep_s = Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    forward, calls = DGI.forward, [0]

    def stalling(self, batch):
        calls[0] += 1
        if calls[0] >= at:
            ready.touch()
            time.sleep(sleep_s)
        return forward(self, batch)

    DGI.forward = stalling
    sys.exit(main(sys.argv[4:]))

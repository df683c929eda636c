"""Progress lines of long runs (training, CV): time-stamped, flushed, on stdout."""

from __future__ import annotations

import datetime as dt


def log(msg: str) -> None:
    print(f"[{dt.datetime.now():%H:%M:%S}] {msg}", flush=True)

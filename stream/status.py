"""A worker's status file: assignment and a processing heartbeat, replaced atomically.

Supervisors (the demo, health checks) read it instead of parsing logs."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import msgspec


class WorkerStatus(msgspec.Struct):
    pid: int
    written_at: float  # wall clock, seconds
    assigned: list[str]
    batches: int
    events: int
    last_progress: float  # wall clock of the last processed batch, seconds
    labels: int = 0
    stopping: bool = False
    lag: int = -1  # -1: not known yet
    broker_silent_s: float = 0.0
    model_version: str = ""
    challenger_version: str = ""
    input_partitions: int = 0  # partitions of the transactions topic held
    group_state: str = ""  # the transactions consumer's group join state
    output_error: str = ""  # an output topic refuses every record: the worker will end
    state_backlog: int = 0  # events and labels not yet counted into the feature state
    paused: bool = False  # consumption paused: outputs or state writes are behind
    state_lost: str = ""  # why the feature state is incomplete ("" while it is whole)


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(WorkerStatus).decode


@dataclass
class StatusWriter:
    path: Path
    interval_s: float = 1.0
    _next: float = 0.0

    def maybe_write(self, status: WorkerStatus, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now < self._next:
            return
        self._next = now + self.interval_s
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        tmp.write_bytes(_encode(status))
        os.replace(tmp, self.path)


def read_status(path: Path) -> WorkerStatus | None:
    try:
        return _decode(path.read_bytes())
    except (OSError, msgspec.MsgspecError):
        return None

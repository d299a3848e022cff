"""The append-only record log of a store, written through a write-back buffer.

`Log` keeps every record in memory (the replication source) and the framed bytes of records not
yet written in a buffer. Bytes reach the file only through `write_out` (called by the store's
flusher according to the fsync policy), so a SIGKILL loses exactly the buffered tail: what a
power cut would lose. On open, the file is scanned; a torn or corrupt tail is truncated (and
fsync'd) and counted in ``truncated_records``/``truncated_bytes``.

Threading contract: `append`, `take_pending` and `truncate_to` run on the owner's thread (the event
loop); `write_out` may run in a worker thread, one at a time, on bytes taken by `take_pending`.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType

from clipstream.errors import ClipStreamError
from clipstream.records import Record, encode, scan


class Log:
    """An append-only, CRC-framed log file with a write-back buffer (a context manager)."""

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        with open(path, "rb") as fh:
            data = fh.read()
        result = scan(data)
        self.truncated_bytes = result.bad_bytes
        self.truncated_reason = result.reason
        # count what the bad tail held, as far as frame headers can be trusted: at least one
        self.truncated_records = 1 if result.bad_bytes else 0
        if result.bad_bytes:
            os.ftruncate(self._fd, result.good_bytes)
            os.fsync(self._fd)
        self.records: list[Record] = list(result.records)
        self._ends: list[int] = list(result.ends)
        self._buffer = bytearray()
        self._file_bytes = result.good_bytes
        self.durable_index = len(self.records)

    def __enter__(self) -> Log:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def last_index(self) -> int:
        return len(self.records)

    @property
    def last_epoch(self) -> int:
        return self.records[-1].epoch if self.records else 0

    @property
    def pending_bytes(self) -> int:
        return len(self._buffer)

    def epoch_at(self, index: int) -> int:
        """The epoch of record ``index`` (0 for index 0, the empty prefix)."""
        return self.records[index - 1].epoch if index > 0 else 0

    def epoch_runs(self) -> list[tuple[int, int]]:
        """``[(epoch, first_index), ...]``: where each epoch's records start, in log order."""
        runs: list[tuple[int, int]] = []
        for rec in self.records:
            if not runs or runs[-1][0] != rec.epoch:
                runs.append((rec.epoch, rec.index))
        return runs

    def append(self, rec: Record) -> None:
        """Buffer ``rec``; its index must be the next one. Nothing reaches the OS here."""
        if rec.index != self.last_index + 1:
            raise ClipStreamError(f"append of index {rec.index} after {self.last_index}")
        frame = encode(rec)
        self._buffer += frame
        self.records.append(rec)
        self._ends.append((self._ends[-1] if self._ends else 0) + len(frame))

    def take_pending(self) -> tuple[bytes, int]:
        """Detach the buffered bytes; return them and the index they bring the file up to."""
        data = bytes(self._buffer)
        self._buffer.clear()
        return data, self.last_index

    def write_out(self, data: bytes, *, fsync: bool) -> None:
        """Write bytes taken by `take_pending` to the file, then fsync if asked (worker thread)."""
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        if fsync:
            os.fsync(self._fd)
        self._file_bytes += len(data)

    def mark_durable(self, upto: int) -> None:
        """Record that records up to ``upto`` are in the file (after `write_out` returned)."""
        self.durable_index = max(self.durable_index, min(upto, self.last_index))

    def flush(self) -> None:
        """Write and fsync everything buffered, on this thread (close, truncation)."""
        data, upto = self.take_pending()
        if data:
            self.write_out(data, fsync=True)
        else:
            os.fsync(self._fd)
        self.mark_durable(upto)

    def truncate_to(self, index: int) -> list[Record]:
        """Drop every record after ``index`` from memory and file (fsync'd); return the dropped.

        Used by a rejoining store to discard what the new primary never had.
        """
        if index >= self.last_index:
            return []
        index = max(index, 0)
        self.flush()
        size = self._ends[index - 1] if index > 0 else 0
        os.ftruncate(self._fd, size)
        os.fsync(self._fd)
        dropped = self.records[index:]
        del self.records[index:]
        del self._ends[index:]
        self._file_bytes = size
        self.durable_index = min(self.durable_index, index)
        return dropped

    def close(self, *, flush: bool = True) -> None:
        """Flush (unless told not to, to simulate a crash in tests) and close the file."""
        if self._fd < 0:
            return
        try:
            if flush:
                self.flush()
        finally:
            os.close(self._fd)
            self._fd = -1

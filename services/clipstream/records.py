"""Log records and their on-disk framing.

A frame is ``length (4 bytes, big-endian) | crc32(payload) (4 bytes) | payload``; the payload is
compact JSON of one record. Every record carries its log ``index`` (1, 2, 3... without gaps) and
the ``epoch`` it was written under. Two kinds exist:

- `VideoRecord`: an upload (metadata; the blob is a file written before the record);
- `IncrRecord`: one view or like, identified by the client's op id (deduplicated on replay).

`scan` reads a byte string of frames and stops at the first torn or corrupt frame, returning the
good records and the byte length they span: the caller truncates the rest.
"""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass
from typing import Any, Literal

from clipstream.errors import CorruptRecord

HEADER = struct.Struct(">II")
MAX_PAYLOAD = 1 << 20


@dataclass(frozen=True, slots=True)
class VideoRecord:
    """An uploaded video's metadata; its bytes live in the blob file named by ``sha256``."""

    index: int
    epoch: int
    id: str
    title: str
    size: int
    sha256: str
    created_at: float


@dataclass(frozen=True, slots=True)
class IncrRecord:
    """One increment of ``field`` (views or likes) of ``video``, by client operation ``op``."""

    index: int
    epoch: int
    video: str
    field: Literal["views", "likes"]
    op: str


Record = VideoRecord | IncrRecord


def to_wire(rec: Record) -> dict[str, Any]:
    """The JSON-able form of a record (used in the log and on the replication wire)."""
    if isinstance(rec, VideoRecord):
        return {
            "k": "v", "i": rec.index, "e": rec.epoch, "id": rec.id, "t": rec.title,
            "n": rec.size, "h": rec.sha256, "c": rec.created_at,
        }
    return {"k": "c", "i": rec.index, "e": rec.epoch, "v": rec.video, "f": rec.field, "o": rec.op}


def from_wire(d: Any) -> Record:
    """Rebuild a record from `to_wire` output; raise `CorruptRecord` on any malformed field."""
    try:
        kind = d["k"]
        index, epoch = int(d["i"]), int(d["e"])
        if index < 1 or epoch < 1:
            raise ValueError("index and epoch must be >= 1")
        if kind == "v":
            return VideoRecord(
                index=index, epoch=epoch, id=str(d["id"]), title=str(d["t"]),
                size=int(d["n"]), sha256=str(d["h"]), created_at=float(d["c"]),
            )
        if kind == "c" and d["f"] in ("views", "likes"):
            return IncrRecord(index=index, epoch=epoch, video=str(d["v"]), field=d["f"],
                              op=str(d["o"]))
        raise ValueError(f"unknown record kind {kind!r}")
    except (KeyError, TypeError, ValueError) as exc:
        raise CorruptRecord(f"bad record: {exc}") from exc


def encode(rec: Record) -> bytes:
    """One framed record, ready to append."""
    payload = json.dumps(to_wire(rec), separators=(",", ":")).encode()
    return HEADER.pack(len(payload), zlib.crc32(payload)) + payload


def decode_payload(payload: bytes) -> Record:
    """Decode one payload (the bytes after the header); raise `CorruptRecord`."""
    try:
        return from_wire(json.loads(payload))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorruptRecord(f"payload is not JSON: {exc}") from exc


@dataclass(frozen=True, slots=True)
class ScanResult:
    """What `scan` found: the good records, where each one ends, and what follows them."""

    records: tuple[Record, ...]
    ends: tuple[int, ...]
    good_bytes: int
    bad_bytes: int
    reason: str | None


def scan(data: bytes, *, first_index: int = 1) -> ScanResult:
    """Decode consecutive frames from ``data`` until the end or the first bad frame.

    A frame is bad when its header or payload is cut short, its length is absurd, its CRC does
    not match, its payload does not decode, or its index is not the next one expected. Nothing
    after a bad frame is trusted (``bad_bytes`` counts it, ``reason`` says why).
    """
    records: list[Record] = []
    ends: list[int] = []
    pos, expected, reason = 0, first_index, None
    while pos < len(data):
        if len(data) - pos < HEADER.size:
            reason = "torn header"
            break
        length, crc = HEADER.unpack_from(data, pos)
        start = pos + HEADER.size
        if length > MAX_PAYLOAD:
            reason = f"absurd frame length {length}"
            break
        if len(data) - start < length:
            reason = "torn payload"
            break
        payload = data[start : start + length]
        if zlib.crc32(payload) != crc:
            reason = "crc mismatch"
            break
        try:
            rec = decode_payload(payload)
        except CorruptRecord as exc:
            reason = str(exc)
            break
        if rec.index != expected:
            reason = f"index {rec.index} where {expected} was expected"
            break
        records.append(rec)
        pos = start + length
        ends.append(pos)
        expected += 1
    return ScanResult(tuple(records), tuple(ends), pos, len(data) - pos, reason)

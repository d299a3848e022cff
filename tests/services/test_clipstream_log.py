"""Unit tests of the record framing and the log: real files, real truncation, real replay."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import pytest
from clipstream.errors import ClipStreamError, CorruptRecord
from clipstream.log import Log
from clipstream.records import (
    HEADER,
    IncrRecord,
    Record,
    VideoRecord,
    decode_payload,
    encode,
    from_wire,
    scan,
)
from clipstream.state import Index
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


def video(i: int, epoch: int = 1, vid: str | None = None) -> VideoRecord:
    return VideoRecord(index=i, epoch=epoch, id=vid or f"v{i}", title=f"title {i}", size=i,
                       sha256="ab" * 32, created_at=1000.0 + i)


def incr(i: int, vid: str, op: str, field: str = "likes", epoch: int = 1) -> IncrRecord:
    return IncrRecord(index=i, epoch=epoch, video=vid, field=field, op=op)  # type: ignore[arg-type]


def write_log(path: Path, records: list[Record]) -> None:
    with Log(path) as log:
        for rec in records:
            log.append(rec)


def test_frame_round_trip_keeps_every_field() -> None:
    recs: list[Record] = [video(1), incr(2, "v1", "op-1", "views")]
    data = b"".join(encode(r) for r in recs)
    result = scan(data)
    assert result.records == tuple(recs)
    assert result.bad_bytes == 0 and result.reason is None
    assert result.ends[-1] == len(data)


def test_frame_header_is_length_then_crc() -> None:
    frame = encode(video(1))
    length, crc = HEADER.unpack_from(frame)
    assert length == len(frame) - HEADER.size
    assert crc == zlib.crc32(frame[HEADER.size:])


@pytest.mark.parametrize("bad", [
    b"not json", b'{"k":"v"}', b'{"k":"x","i":1,"e":1}', b'{"k":"c","i":0,"e":1,"v":"a",'
    b'"f":"likes","o":"x"}', b'{"k":"c","i":1,"e":1,"v":"a","f":"shares","o":"x"}',
])
def test_decode_rejects_malformed_payloads(bad: bytes) -> None:
    with pytest.raises(CorruptRecord):
        decode_payload(bad)


def test_from_wire_rejects_non_mappings() -> None:
    with pytest.raises(CorruptRecord):
        from_wire(["k", "v"])


def test_scan_stops_at_a_flipped_bit_and_reports_crc() -> None:
    data = bytearray(encode(video(1)) + encode(video(2)))
    data[-3] ^= 0x01
    result = scan(bytes(data))
    assert [r.index for r in result.records] == [1]
    assert result.reason == "crc mismatch"
    assert result.good_bytes == len(encode(video(1)))


def test_scan_rejects_an_index_gap() -> None:
    result = scan(encode(video(1)) + encode(video(3)))
    assert [r.index for r in result.records] == [1]
    assert result.reason is not None and "index 3" in result.reason


def test_scan_rejects_an_absurd_length() -> None:
    data = encode(video(1)) + struct.pack(">II", 1 << 30, 0) + b"x" * 10
    result = scan(data)
    assert len(result.records) == 1 and "absurd" in str(result.reason)


def test_torn_tail_is_truncated_at_open_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "log"
    write_log(path, [video(1), video(2), video(3)])
    full = path.read_bytes()
    with open(path, "r+b") as fh:
        fh.truncate(len(full) - 5)  # a power cut in the middle of the third frame
    with Log(path) as log:
        assert [r.index for r in log.records] == [1, 2]
        assert log.truncated_records == 1
        assert log.truncated_bytes == len(full) - 5 - len(encode(video(1))) * 2
        assert log.truncated_reason == "torn payload"
    assert path.stat().st_size == len(encode(video(1))) * 2  # the file itself was cut
    with Log(path) as log:  # and a second open finds nothing more to cut
        assert log.truncated_records == 0 and log.last_index == 2


def test_corrupt_tail_is_truncated_and_appends_continue(tmp_path: Path) -> None:
    path = tmp_path / "log"
    write_log(path, [video(1), video(2)])
    with open(path, "ab") as fh:
        fh.write(b"\x00\x00\x00\x10garbage-garbage!!")
    with Log(path) as log:
        assert log.last_index == 2 and log.truncated_records == 1
        log.append(video(3))
    with Log(path) as log:
        assert [r.index for r in log.records] == [1, 2, 3]


def test_append_refuses_a_wrong_index(tmp_path: Path) -> None:
    with Log(tmp_path / "log") as log, pytest.raises(ClipStreamError):
        log.append(video(2))


def test_buffered_records_do_not_reach_the_file_until_written(tmp_path: Path) -> None:
    """The write-back buffer: a crash (close without flush) loses exactly the unwritten tail."""
    path = tmp_path / "log"
    log = Log(path)
    log.append(video(1))
    data, upto = log.take_pending()
    log.write_out(data, fsync=True)
    log.mark_durable(upto)
    log.append(video(2))
    log.append(video(3))
    assert path.stat().st_size == len(data)
    assert log.durable_index == 1 and log.last_index == 3
    log.close(flush=False)  # the process dies here
    with Log(path) as again:
        assert [r.index for r in again.records] == [1]


def test_close_flushes_everything(tmp_path: Path) -> None:
    path = tmp_path / "log"
    write_log(path, [video(1), video(2)])
    with Log(path) as log:
        assert log.last_index == 2 and log.durable_index == 2


def test_truncate_to_drops_records_in_memory_and_on_disk(tmp_path: Path) -> None:
    path = tmp_path / "log"
    with Log(path) as log:
        for i in range(1, 6):
            log.append(video(i))
        log.flush()
        log.append(video(6))  # still buffered
        dropped = log.truncate_to(3)
        assert [r.index for r in dropped] == [4, 5, 6]
        assert log.last_index == 3
        log.append(video(4, epoch=2, vid="new"))
    with Log(path) as log:
        assert [(r.index, r.epoch) for r in log.records] == [(1, 1), (2, 1), (3, 1), (4, 2)]


def test_epoch_runs_and_epoch_at(tmp_path: Path) -> None:
    with Log(tmp_path / "log") as log:
        for i, e in enumerate([1, 1, 2, 2, 2, 4], start=1):
            log.append(video(i, epoch=e))
        assert log.epoch_runs() == [(1, 1), (2, 3), (4, 6)]
        assert [log.epoch_at(i) for i in range(7)] == [0, 1, 1, 2, 2, 2, 4]


def test_replay_rebuilds_the_same_index(tmp_path: Path) -> None:
    path = tmp_path / "log"
    recs: list[Record] = [video(1), video(2), incr(3, "v1", "a"), incr(4, "v1", "a"),
                          incr(5, "v1", "b"), incr(6, "v2", "a", "views"), video(7, vid="v1")]
    live = Index()
    for r in recs:
        live.apply(r)
    write_log(path, recs)
    with Log(path) as log:
        replayed = Index.replay(log.records)
    assert replayed.videos == live.videos
    assert replayed.likes == live.likes == {"v1": 2, "v2": 0}
    assert replayed.views == live.views == {"v1": 0, "v2": 1}
    assert replayed.videos["v1"].title == "title 1"  # the duplicate id did not overwrite


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(min_value=1, max_value=12), cut=st.floats(min_value=0, max_value=1))
def test_any_cut_recovers_a_prefix(tmp_path: Path, n: int, cut: float) -> None:
    """Whatever byte a power cut stops at, recovery keeps exactly the whole frames before it."""
    path = tmp_path / f"log-{n}-{cut}"
    recs = [video(i) for i in range(1, n + 1)]
    write_log(path, recs)
    full = path.read_bytes()
    keep = int(len(full) * cut)
    path.write_bytes(full[:keep])
    ends = scan(full).ends
    whole = sum(1 for e in ends if e <= keep)
    with Log(path) as log:
        assert log.records == recs[:whole]
        assert log.truncated_bytes == keep - (ends[whole - 1] if whole else 0)
    os.remove(path)

"""Our server's pure parts, in process: Go-style body decoding, addresses, slicer cuts."""

from __future__ import annotations

import itertools
import random
import socket

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drills.errors import ProxyError
from drills.toxiproxy.decode import (
    ApiError,
    Field,
    decode_struct,
    merge_toxic,
    parse_toxic,
    read_json,
)
from drills.toxiproxy.proxy import bind, resolved_text, split_host_port
from drills.toxiproxy.toxics import LatencyAttrs, SlicerAttrs, SlicerStage, ToxicSpec

FIELDS = (Field("name", "str"), Field("enabled", "bool"), Field("n", "int"), Field("f", "float"))


def test_api_error_is_a_proxy_error_with_status() -> None:
    err = ApiError("proxy not found", 404)
    assert isinstance(err, ProxyError) and err.status == 404 and err.message == "proxy not found"


def test_read_json_reads_one_value_like_go() -> None:
    assert read_json(b'  {"a": 1} trailing garbage') == {"a": 1}
    assert read_json(b"[1, 2]\n[3]") == [1, 2]
    for body, reason in ((b"", "EOF"), (b"   \n", "EOF"), (b'{"a": ', "unexpected EOF")):
        with pytest.raises(ApiError) as err:
            read_json(body)
        assert err.value.status == 400 and err.value.message == f"bad request body: {reason}"
    for body in (b"{not json}", b"NaN", b'{"a": Infinity}'):
        with pytest.raises(ApiError) as err:
            read_json(body)
        assert err.value.message.startswith("bad request body: ")


def test_decode_struct_matches_names_case_insensitively_last_wins() -> None:
    got = decode_struct(
        {"NAME": "a", "name": "b", "Enabled": True, "x": 1, "n": None},
        FIELDS,
        struct="T",
        go_value="main.T",
    )
    assert got == {"name": "b", "enabled": True}
    assert decode_struct(None, FIELDS, struct="T", go_value="main.T") == {}
    assert decode_struct({"f": 1}, FIELDS, struct="T", go_value="main.T") == {"f": 1.0}


@pytest.mark.parametrize(
    ("value", "go_type"),
    [
        ({"name": 5}, "string"),
        ({"enabled": "yes"}, "bool"),
        ({"n": 1.5}, "int64"),
        ({"n": True}, "int64"),
        ({"n": 2**63}, "int64"),
        ({"f": "0.5"}, "float32"),
        ({"f": False}, "float32"),
    ],
)
def test_decode_struct_refuses_wrong_types(value: dict, go_type: str) -> None:
    with pytest.raises(ApiError) as err:
        decode_struct(value, FIELDS, struct="T", go_value="main.T")
    assert err.value.status == 400 and f"of type {go_type}" in err.value.message


def test_decode_struct_refuses_non_objects() -> None:
    for value in ([1], "x", 3):
        with pytest.raises(ApiError):
            decode_struct(value, FIELDS, struct="T", go_value="main.T")


def test_parse_toxic_defaults_and_error_order() -> None:
    spec = parse_toxic(b'{"type": "latency", "attributes": {"Latency": 9}}', lambda n: False)
    assert (spec.name, spec.stream, spec.upstream, spec.toxicity) == (
        "latency_downstream",
        "downstream",
        False,
        1.0,
    )
    assert spec.attributes == LatencyAttrs(latency=9, jitter=0)
    upper = parse_toxic(b'{"type": "noop", "stream": "UPSTREAM"}', lambda n: False)
    assert upper.upstream is True and upper.stream == "UPSTREAM" and upper.name == "noop_UPSTREAM"

    def status(body: bytes, taken: bool = True) -> tuple[int | None, str]:
        with pytest.raises(ApiError) as err:
            parse_toxic(body, lambda n: taken)
        return err.value.status, err.value.message

    assert status(b'{"type": "x", "stream": "y"}')[1].startswith("stream was invalid")
    assert status(b'{"type": "x"}') == (400, "invalid toxic type")
    assert status(b'{"type": "latency", "attributes": {"latency": "z"}}') == (
        409,
        "toxic already exists",
    )
    assert status(b'{"type": "latency", "attributes": {"latency": "z"}}', taken=False)[0] == 400
    assert status(b'{"type": "latency", "attributes": 7}', taken=False)[0] == 400


def test_merge_toxic_merges_attributes_and_toxicity_only() -> None:
    spec = parse_toxic(
        b'{"type": "latency", "attributes": {"latency": 9, "jitter": 2}}', lambda n: False
    )
    merged = merge_toxic(spec, b'{"toxicity": 0.5, "type": "timeout", "attributes": {"jitter": 4}}')
    assert merged.type == "latency" and merged.toxicity == 0.5
    assert merged.attributes == LatencyAttrs(latency=9, jitter=4)
    assert merged.to_json()["toxicity"] == 0.5 and spec.to_json()["toxicity"] == 1


@pytest.mark.parametrize(
    ("addr", "parts"),
    [
        ("127.0.0.1:80", ("127.0.0.1", "80")),
        ("[::1]:80", ("::1", "80")),
        (":80", ("", "80")),
        ("localhost:0", ("localhost", "0")),
    ],
)
def test_split_host_port(addr: str, parts: tuple[str, str]) -> None:
    assert split_host_port(addr) == parts


@pytest.mark.parametrize(
    ("addr", "error"),
    [
        ("foo", "missing port in address"),
        ("a:b:c", "too many colons in address"),
        ("[::1", "missing ']' in address"),
        ("[::1]", "missing port in address"),
    ],
)
def test_split_host_port_errors_in_gos_words(addr: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        split_host_port(addr)


def test_resolved_text_like_go_resolve_tcp_addr() -> None:
    assert resolved_text("localhost:26379") == "127.0.0.1:26379"
    assert resolved_text("[::1]:5") == "[::1]:5"
    assert resolved_text(":8080") == ":8080"
    assert resolved_text("") == ":0"
    with pytest.raises(ValueError, match="no such host"):
        resolved_text("no-such-host.invalid:1")


def test_bind_reports_the_os_error_as_go_does() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(ApiError) as err:
            bind(f"127.0.0.1:{port}")
    assert err.value.status == 500
    assert err.value.message == f"listen tcp 127.0.0.1:{port}: bind: address already in use"
    sock, bound = bind("localhost:0")
    with sock:
        assert bound == f"127.0.0.1:{sock.getsockname()[1]}"


def _slicer(average: int, variation: int, seed: int) -> SlicerStage:
    spec = ToxicSpec(
        name="s",
        type="slicer",
        stream="downstream",
        upstream=False,
        toxicity=1.0,
        attributes=SlicerAttrs(average_size=average, size_variation=variation),
    )
    return SlicerStage(spec, 1, None, random.Random(seed))  # type: ignore[arg-type]


@given(
    size=st.integers(0, 5000),
    average=st.integers(-5, 300),
    variation=st.integers(-5, 400),
    seed=st.integers(0, 2**32),
)
def test_slicer_cuts_cover_the_chunk_in_order(size: int, average: int, variation: int, seed: int):
    bounds = _slicer(average, variation, seed).cuts(0, size)
    assert bounds[0] == 0 and bounds[-1] == size and len(bounds) % 2 == 0
    pieces = list(zip(bounds[::2], bounds[1::2], strict=True))
    assert all(b == c for (_, b), (c, _) in itertools.pairwise(pieces))
    if size:
        assert all(end > start for start, end in pieces)
    if average > 0 and 0 <= variation < average:
        assert all(end - start <= average + variation for start, end in pieces)


def test_slicer_cuts_really_slice() -> None:
    bounds = _slicer(10, 0, 1).cuts(0, 100)
    assert len(bounds) // 2 >= 8


def test_data_heard_before_the_pipes_exist_is_kept_and_fed_in_order():
    """CPython < 3.11.4 ignores pause_reading() in connection_made (gh-103607): a client that
    speaks first is heard before the upstream is connected. Nothing may be lost or reordered."""
    from drills.toxiproxy.link import _Side

    class Transport:
        paused = 0

        def pause_reading(self):
            self.paused += 1

    class Pipe:
        def __init__(self):
            self.got: list[object] = []

        def feed(self, data):
            self.got.append(data)

        def feed_eof(self):
            self.got.append("EOF")

    side = _Side(None)  # type: ignore[arg-type]
    side.transport = Transport()  # type: ignore[assignment]
    side.data_received(b"GET / HTTP/1.1\r\n")
    side.data_received(b"\r\n")
    assert side.eof_received() is True
    assert side.transport.paused == 2  # type: ignore[union-attr]
    side.inbound = Pipe()  # type: ignore[assignment]
    side.flush_early()
    assert side.inbound.got == [b"GET / HTTP/1.1\r\n", b"\r\n", "EOF"]  # type: ignore[union-attr]
    side.data_received(b"more")
    assert side.inbound.got[-1] == b"more"  # type: ignore[union-attr]

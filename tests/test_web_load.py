"""200 concurrent predictions on loopback, all answered correctly; the median latency is
reported (printed, and written to ``$STEADYNET_TEST_ARTIFACTS/load.json``), never asserted:
the machines that run the tests are shared."""

import asyncio
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")

import steadynet  # noqa: E402
from conftest import make_blobs  # noqa: E402

N_REQUESTS = 200
ARTIFACTS = os.environ.get(
    "STEADYNET_TEST_ARTIFACTS", os.path.join(os.path.dirname(os.path.abspath(__file__)), "artifacts")
)


async def predict_all(url, X):
    """POST every row of ``X`` at once; return (status, body, seconds) per request."""
    limits = httpx.Limits(max_connections=N_REQUESTS, max_keepalive_connections=N_REQUESTS)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:

        async def one(x):
            started = time.perf_counter()
            r = await client.post("/api/predict", json={"input": x.tolist()})
            return r.status_code, r.json(), time.perf_counter() - started

        return await asyncio.wait_for(asyncio.gather(*(one(x) for x in X)), timeout=120)


def test_200_concurrent_predictions(tmp_path):
    """The server runs as ``steadynet serve`` in its own process, as a user would start it, so
    that the client's Python does not share its interpreter lock."""
    data = make_blobs(n_train=500, n_test=N_REQUESTS, n_features=784, n_classes=10, seed=2)
    model = steadynet.MLP((784, 30, 10), seed=0)
    steadynet.save(tmp_path / "model.npz", model)
    np.savez(tmp_path / "data.npz", x_train=data.x_train, y_train=data.y_train, x_test=data.x_test, y_test=data.y_test)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "steadynet",
            "serve",
            str(tmp_path / "model.npz"),
            "--data",
            str(tmp_path / "data.npz"),
            "--host",
            "127.0.0.1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert " at http://127.0.0.1:" in line, line + proc.stderr.read()
        answers = asyncio.run(predict_all(line.split(" at ")[1].split()[0], data.x_test))
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    P = model.predict_proba(data.x_test)
    assert [status for status, _, _ in answers] == [200] * N_REQUESTS
    for (_, body, _), p in zip(answers, P):  # each answer belongs to its own request
        assert body["label"] == int(p.argmax())
        np.testing.assert_allclose(body["probabilities"], p, rtol=1e-5)
    seconds = np.array([s for _, _, s in answers])
    report = {
        "requests": N_REQUESTS,
        "concurrent": N_REQUESTS,
        "model": "784-30-10",
        "median_ms": round(1000 * float(np.median(seconds)), 2),
        "p90_ms": round(1000 * float(np.percentile(seconds, 90)), 2),
        "max_ms": round(1000 * float(seconds.max()), 2),
    }
    print(
        f"\n{N_REQUESTS} concurrent /api/predict on loopback: median {report['median_ms']} ms, "
        f"90th percentile {report['p90_ms']} ms, max {report['max_ms']} ms"
    )
    os.makedirs(ARTIFACTS, exist_ok=True)
    with open(os.path.join(ARTIFACTS, "load.json"), "w") as f:
        json.dump(report, f, indent=2)

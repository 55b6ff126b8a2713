"""The thread policy: BLAS threads chosen from the step's shapes, overridable, applied only
while the loop takes its steps, and recorded in the run's config.json."""

import json
import subprocess
import sys

import numpy as np
import pytest

from steadynet.config import TrainConfig
from steadynet.errors import ConfigError
from steadynet.threads import blas_threads, choose_threads, step_products, threads_setting

threadpoolctl = pytest.importorskip("threadpoolctl", reason="the thread policy acts through threadpoolctl")


def blas_thread_counts():
    return [i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]


def test_the_step_products_are_forward_weight_and_input_gradients():
    assert step_products((784, 30, 10), 64) == [(64, 784, 30), (784, 64, 30), (64, 30, 10), (30, 64, 10), (64, 10, 30)]


@pytest.mark.parametrize(
    "sizes, batch, cores, expected",
    [
        ((784, 30, 10), 64, 2, 1),  # the seed network: 1.5M multiply-adds at most, one thread
        ((784, 30, 10), 64, 16, 1),  # however many cores
        ((784, 100, 10), 128, 2, 1),  # 10M: one thread's worth
        ((784, 800, 10), 128, 2, 2),  # 80M: as many as there are cores
        ((784, 800, 10), 128, 16, 9),  # 80.3M over 8.4M per thread
        ((784, 30, 10), 55000, 2, 2),  # full batch: large products
    ],
)
def test_auto_gives_one_thread_per_share_of_the_largest_product(sizes, batch, cores, expected):
    assert choose_threads(sizes, batch, "auto", cores=cores) == expected


def test_an_explicit_number_overrides_the_policy_and_bad_ones_are_refused():
    assert choose_threads((784, 30, 10), 64, 3, cores=2) == 3
    for bad in (0, -1, 1.5, "two", True):
        with pytest.raises(ConfigError, match="^threads must be 'auto' or an integer >= 1"):
            choose_threads((784, 30, 10), 64, bad)


def test_the_config_refuses_bad_thread_settings_naming_the_option():
    assert TrainConfig(threads=2).validate().threads == 2
    for bad in (0, "x", 2.0, None):
        with pytest.raises(ConfigError, match=r"^threads must be 'auto' or an integer from 1 to 1024"):
            TrainConfig(threads=bad).validate()
    assert threads_setting(" 4 ") == 4 and threads_setting("auto") == "auto" and threads_setting("-1") == "-1"


def test_the_limit_holds_inside_and_is_restored_after():
    before = blas_thread_counts()
    with blas_threads(1):
        assert set(blas_thread_counts()) == {1}
    assert blas_thread_counts() == before


def test_training_steps_run_on_the_chosen_threads_and_config_json_says_so(tmp_path):
    from steadynet import train
    from steadynet.data import Dataset

    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, size=(200, 64), dtype=np.uint8)
    y = rng.integers(0, 10, size=200)
    data = Dataset(X, y, X[:20], y[:20], (8, 8), "noise")
    before, seen = blas_thread_counts(), set()
    train(
        data=data,
        epochs=1,
        val_size=0,
        batch_size=50,
        out=str(tmp_path / "run"),
        threads=1,
        on_step=lambda info: seen.update(blas_thread_counts()),
    )
    assert seen == {1}
    assert set(blas_thread_counts()) == set(before)  # afterwards the library's own again (a BLAS may have loaded)
    recorded = json.loads((tmp_path / "run" / "config.json").read_text())
    assert recorded["config"]["threads"] == 1
    assert recorded["execution"]["threads"]["used"] == 1 and recorded["execution"]["threads"]["blas"]
    assert recorded["execution"]["engine"] in ("numpy", "numba")


def test_the_cli_refuses_a_bad_thread_count_in_one_line(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "steadynet", "train", "--threads", "many"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert r.returncode != 0
    assert (
        r.stderr.strip() == "steadynet train: error: --threads must be 'auto' or an integer from 1 to 1024, got 'many'."
    )

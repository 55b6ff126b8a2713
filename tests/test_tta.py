"""Test-time augmentation (steadynet/tta.py): the average over an image and its four one-pixel
shifts, edges repeated; the auto rule (more than one paired standard error on validation);
the decision recorded in metrics.json, reproducible and kept on resume; and --tta of
evaluate and predict, which follow the run's choice."""

import json
import os
import shutil

import numpy as np
import pytest

from conftest import interrupt_at, make_blobs
from steadynet import MLP, TrainConfig, load, save, train
from steadynet.cli.app import main
from steadynet.cli.evaluate import evaluate
from steadynet.data import make_dataset
from steadynet.data.augment import shift_images_edge
from steadynet.errors import ConfigError
from steadynet.progress import summary_table
from steadynet.report import write_report
from steadynet.train import Interrupted
from steadynet.tta import NO_RECORD, OFFSETS, choose_tta, tta_proba, use_tta


def hand_shifted(X, shape, dy, dx):
    """``X`` (n, h * w) moved down ``dy`` and right ``dx``, written independently of the
    library: pad every side by one pixel repeating the edge, then cut the window."""
    h, w = shape
    padded = np.pad(X.reshape(-1, h, w), ((0, 0), (1, 1), (1, 1)), mode="edge")  # (n, h + 2, w + 2)
    return padded[:, 1 - dy : 1 - dy + h, 1 - dx : 1 - dx + w].reshape(len(X), h * w)


def one_hot_probs(pred, k=3):
    """Probabilities that put 0.9 on each row's predicted class."""
    P = np.full((len(pred), k), 0.1 / (k - 1))
    P[np.arange(len(pred)), pred] = 0.9
    return P


# ---------------------------------------------------------------------------- the average


@pytest.mark.parametrize("dtype", ["uint8", "float32"])
def test_tta_is_the_mean_over_the_hand_shifted_copies(dtype):
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (7, 20)).astype(np.uint8)  # 7 images of 4x5
    X = X if dtype == "uint8" else (X / 255).astype(np.float32)
    model = MLP((20, 6, 3), "relu", dtype="float64", seed=2)
    P = tta_proba(model, X, (4, 5), chunk=3)  # three chunks, the last of one image
    assert P.shape == (7, 3) and P.dtype == np.float64
    np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=1e-12)
    shifts = [(0, 0), (-1, 0), (1, 0), (0, -1), (0, 1)]
    assert sorted(OFFSETS) == sorted(shifts)
    expected = np.mean([model.predict_proba(hand_shifted(X, (4, 5), dy, dx)) for dy, dx in shifts], axis=0)
    np.testing.assert_allclose(P, expected, rtol=1e-12, atol=1e-15)
    # not the plain prediction: the shifts change it
    assert not np.allclose(P, model.predict_proba(X), atol=1e-6)
    # 28x28 images given as (n, 28, 28) are read as flattened rows
    images = rng.integers(0, 256, (3, 28, 28)).astype(np.uint8)
    mnist_model = MLP((784, 8, 10), seed=0)
    np.testing.assert_array_equal(
        tta_proba(mnist_model, images, (28, 28)), tta_proba(mnist_model, images.reshape(3, 784), (28, 28))
    )


def test_a_light_ground_keeps_its_ground_when_shifted():
    light = np.full((1, 6, 6), 255, np.uint8)
    light[0, 2:4, 2:4] = 10  # a dark stroke in the middle of a white field
    X = light.reshape(1, 36)
    for dy, dx in OFFSETS:
        S = shift_images_edge(X, (6, 6), dy, dx).reshape(6, 6)
        border = np.concatenate([S[0], S[-1], S[:, 0], S[:, -1]])
        assert (border == 255).all(), (dy, dx)  # no black row or column comes in
        assert (S == 10).sum() == 4  # the stroke moved whole
    np.testing.assert_array_equal(shift_images_edge(X, (6, 6), 1, 0).reshape(6, 6)[1:], light[0, :-1])

    class Spy:  # a model that keeps what it was shown
        n_classes, dtype, seen = 2, np.float32, []

        def predict_proba(self, Xb):
            self.seen.append(Xb.copy())
            return np.full((len(Xb), 2), 0.5, np.float32)

    spy = Spy()
    tta_proba(spy, X, (6, 6))
    assert len(spy.seen) == 5 and all(s.dtype == np.uint8 and s.min() == 10 for s in spy.seen)


# ---------------------------------------------------------------------------- the auto rule


def test_auto_uses_tta_only_beyond_one_paired_standard_error():
    n = 1000
    y = np.zeros(n, dtype=np.int64)
    plain = np.zeros(n, dtype=np.int64)
    plain[:100] = 1  # 100 mistakes without TTA
    # clearly better: TTA mends 40 of them and breaks none
    mended = plain.copy()
    mended[:40] = 0
    record = choose_tta("auto", y, one_hot_probs(plain), one_hot_probs(mended))
    assert record["used"] is True and record["val_accuracy_tta"] - record["val_accuracy_plain"] == pytest.approx(0.04)
    d = np.r_[np.ones(40), np.zeros(n - 40)]
    assert record["se"] == pytest.approx(d.std(ddof=1) / np.sqrt(n), rel=1e-12)
    # a wash: it mends 10 and breaks 9, +0.001 against a standard error of 0.0044
    mixed = plain.copy()
    mixed[:10] = 0
    mixed[500:509] = 1
    record = choose_tta("auto", y, one_hot_probs(plain), one_hot_probs(mixed))
    se = np.sqrt((19 - n * 0.001**2) / (n - 1) / n)
    assert record["se"] == pytest.approx(se, rel=1e-12) and record["used"] is False
    # one image mended, none broken, is exactly one standard error: not more
    one = plain.copy()
    one[0] = 0
    record = choose_tta("auto", y, one_hot_probs(plain), one_hot_probs(one))
    assert record["se"] == pytest.approx(1 / n, rel=1e-9) and record["used"] is False
    # no difference at all
    record = choose_tta("auto", y, one_hot_probs(plain), one_hot_probs(plain))
    assert record["se"] == 0 and record["used"] is False
    # on is on, even where it hurts
    assert choose_tta("on", y, one_hot_probs(mended), one_hot_probs(plain))["used"] is True
    assert set(record) == {"setting", "rule", "n", "val_accuracy_plain", "val_accuracy_tta", "se", "used"}


def test_use_tta_follows_the_record_and_refuses_on_without_images():
    assert use_tta("auto", {"used": True}, (28, 28)) == (True, "the run's choice")
    assert use_tta("auto", {"used": False}, (28, 28)) == (False, "the run's choice")
    assert use_tta("auto", None, (28, 28)) == (False, NO_RECORD)
    assert use_tta("off", {"used": True}, (28, 28))[0] is False
    assert use_tta("on", None, (28, 28))[0] is True
    assert use_tta("auto", {"used": True}, (10,))[0] is False
    with pytest.raises(ConfigError, match=r"^tta on needs images .* holds samples of shape \(10,\); use tta off\.$"):
        use_tta("on", None, (10,))
    with pytest.raises(ConfigError, match=r"^tta must be one of \['off', 'on', 'auto'\], got 'yes'"):
        use_tta("yes", None, (28, 28))


# ---------------------------------------------------------------------------- training runs


def bars(n_train=600, n_test=200, seed=0):
    """10x10 images of one bright bar, horizontal (class 0), vertical (1) or a square (2), at a
    random place, with a little noise: a shift by a pixel keeps the class."""
    rng = np.random.default_rng(seed)

    def draw(n):
        y = rng.integers(0, 3, n)
        X = rng.uniform(0, 0.1, (n, 10, 10))
        for i, (r, c) in enumerate(rng.integers(1, 6, (n, 2))):
            if y[i] == 0:
                X[i, r + 1, c : c + 4] = 1.0
            elif y[i] == 1:
                X[i, r : r + 4, c + 1] = 1.0
            else:
                X[i, r : r + 2, c : c + 2] = 1.0
        return X.reshape(n, 100).astype(np.float32), y

    return make_dataset(*draw(n_train), *draw(n_test))


RUN = dict(hidden=(16,), activation="relu", epochs=3, batch_size=32, val_size=150, seed=1, quiet=True)


def metrics_of(out):
    with open(os.path.join(out, "metrics.json"), encoding="utf-8") as f:
        return json.load(f)


def evidence(record):
    return {k: v for k, v in record.items() if k != "seconds"}


def test_off_records_nothing_measured_and_the_presets_take_auto():
    result = train(data=bars(), **RUN)
    assert result["tta"] == {"setting": "off", "used": False}
    assert TrainConfig().tta == "off"
    assert all(TrainConfig.from_preset(name).tta == "auto" for name in ("seed", "fast", "best"))


def test_on_tests_with_the_average_and_keeps_the_plain_result(tmp_path):
    data = bars()
    result = train(data=data, out=str(tmp_path / "run"), tta="on", **RUN)
    tta, model = result["tta"], result.model
    assert tta["used"] is True and tta["setting"] == "on" and tta["n"] == 150
    P = tta_proba(model, data.x_test, (10, 10))
    assert result["test_accuracy"] == pytest.approx(float((P.argmax(1) == data.y_test).mean()), abs=1e-12)
    assert result["classification"]["accuracy"] == pytest.approx(result["test_accuracy"], abs=1e-12)
    loss, acc = model.evaluate(data.x_test, data.y_test)
    assert (tta["test_loss_plain"], tta["test_accuracy_plain"]) == pytest.approx((loss, acc), abs=1e-12)
    assert metrics_of(tmp_path / "run")["tta"] == tta
    # the model file is the plain model: TTA is a way of reading it, not a change of it
    assert np.array_equal(load(str(tmp_path / "run")).theta, model.theta)
    # the summary table and the report say so in one line each
    table = summary_table(result)
    assert "with test-time augmentation" in table
    assert table.splitlines()[-1].startswith("test-time augmentation used (set on): val acc ")
    page = open(write_report(str(tmp_path / "run")), encoding="utf-8").read()
    assert "test-time augmentation used (set on)" in page and "the averaged predictions" in page


@pytest.mark.parametrize("seed, used", [(1, True), (2, False)])
def test_auto_decides_on_validation_and_not_used_leaves_the_run_plain(seed, used):
    """Seed 1: 0.56 -> 0.68 on validation, three standard errors; seed 2: 0.54 both ways."""
    data = bars()
    auto = train(data=data, tta="auto", **dict(RUN, seed=seed))
    off = train(data=data, tta="off", **dict(RUN, seed=seed))
    tta = auto["tta"]
    assert tta["used"] is used and tta["rule"].startswith("used when its validation accuracy")
    assert (tta["val_accuracy_tta"] - tta["val_accuracy_plain"] > tta["se"]) is used
    assert np.array_equal(auto.model.theta, off.model.theta)  # the decision comes after training
    if used:
        assert tta["test_accuracy_plain"] == off["test_accuracy"] and tta["test_loss_plain"] == off["test_loss"]
        assert auto["test_accuracy"] != off["test_accuracy"]
    else:  # tested as a plain run is, bit for bit
        assert (auto["test_accuracy"], auto["test_loss"]) == (off["test_accuracy"], off["test_loss"])
        assert auto["classification"] == off["classification"] and "test_accuracy_plain" not in tta


def test_auto_without_a_validation_split_or_images_is_off_and_says_why():
    lines = []
    result = train(data=bars(), tta="auto", log=lines.append, **dict(RUN, val_size=0, quiet=False))
    assert result["tta"] == {"setting": "auto", "used": False, "reason": "no validation split to decide on"}
    assert "test-time augmentation not used: no validation split to decide on" in lines
    flat = make_blobs(n_features=10)  # samples of shape (10,): nothing to shift
    result = train(data=flat, tta="auto", **dict(RUN, augment_shift=0, val_size=100))
    assert result["tta"]["used"] is False and "not images" in result["tta"]["reason"]
    with pytest.raises(ConfigError, match=r"^tta on needs images .*shape \(10,\); use tta off\.$"):
        train(data=flat, tta="on", **dict(RUN, augment_shift=0, val_size=100))


def test_a_preset_run_records_the_decision_reproducibly(tmp_path):
    data = bars()
    # the fast preset, shrunk to these tiny images: 0.63 -> 0.71 on validation, 2.5 standard errors
    config = TrainConfig.from_preset("fast", epochs=4, hidden=(32,), ema_decay=0.9, batch_size=32, val_size=150, seed=4)
    for name in ("a", "b"):
        train(config, str(tmp_path / name), data=data, quiet=True)
    a, b = metrics_of(tmp_path / "a"), metrics_of(tmp_path / "b")
    assert a["tta"]["setting"] == "auto" and a["tta"]["used"] is True
    assert evidence(a["tta"]) == evidence(b["tta"])
    assert a["test_accuracy"] == b["test_accuracy"]


def test_a_resumed_run_makes_the_same_decision(tmp_path):
    data = bars()
    run = dict(RUN, tta="on", epochs=2)
    straight = train(data=data, **run)
    out = str(tmp_path / "run")

    with pytest.raises(Interrupted):
        train(data=data, out=out, handle_signals=True, on_step=interrupt_at({3}, epoch=2), **run)
    assert "tta" not in metrics_of(out)  # decided at the end only
    resumed = train(data=data, out=out, resume=True, quiet=True)
    assert np.array_equal(resumed.model.theta, straight.model.theta)
    assert evidence(resumed["tta"]) == evidence(straight["tta"])
    assert resumed["test_accuracy"] == straight["test_accuracy"]


# ---------------------------------------------------------------------------- evaluate and predict


@pytest.fixture(scope="module")
def on_disk(tmp_path_factory):
    """A run with TTA on, trained on 10x10 bars kept in an .npz (so evaluate can reload them)."""
    folder = tmp_path_factory.mktemp("tta")
    d = bars()
    np.savez(folder / "bars.npz", x_train=d.x_train, y_train=d.y_train, x_test=d.x_test, y_test=d.y_test)
    result = train(data=str(folder / "bars.npz"), out=str(folder / "run"), tta="on", **RUN)
    return folder, result


def test_evaluate_follows_the_run_unless_told(on_disk, tmp_path, capsys):
    folder, result = on_disk
    run = str(folder / "run")
    auto = evaluate(run)
    assert auto["tta"] == {
        "setting": "auto",
        "used": True,
        "reason": "the run's choice",
        "test_accuracy_plain": result["tta"]["test_accuracy_plain"],
    }
    assert auto["test_accuracy"] == pytest.approx(result["test_accuracy"], abs=1e-12)
    off = evaluate(run, tta="off")
    assert off["tta"]["used"] is False and off["test_accuracy"] == result["tta"]["test_accuracy_plain"]
    # a bare copy of the model file has no record: auto is off, on is on
    shutil.copy(folder / "run" / "model.npz", tmp_path / "model.npz")
    bare = str(tmp_path / "model.npz")
    data = str(folder / "bars.npz")
    assert evaluate(bare, data)["tta"] == {"setting": "auto", "used": False, "reason": NO_RECORD}
    assert evaluate(bare, data, tta="on")["test_accuracy"] == auto["test_accuracy"]
    # the command line: --json says whether it was used; the text says so in one line
    assert main(["evaluate", run, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["tta"]["used"] is True
    assert main(["evaluate", run, "--tta", "off", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["tta"]["used"] is False
    assert main(["evaluate", run]) == 0
    out = capsys.readouterr().out
    assert "with test-time augmentation (the run's choice); " in out and " without" in out
    assert main(["evaluate", bare, "--data", data]) == 0
    assert "test-time augmentation" not in capsys.readouterr().out  # a bare model, as before


def test_evaluate_tta_on_without_images_is_one_line_naming_the_option(tmp_path, capsys):
    flat = make_blobs(n_features=10, n_train=300, n_test=60)
    path = tmp_path / "flat.npz"
    np.savez(path, x_train=flat.x_train, y_train=flat.y_train, x_test=flat.x_test, y_test=flat.y_test)
    train(data=str(path), out=str(tmp_path / "run"), **dict(RUN, augment_shift=0, val_size=50, epochs=1))
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "run"), "--tta", "on"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("steadynet evaluate: error: --tta on needs images") and "--tta off" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    with pytest.raises(SystemExit) as usage:  # not one of the choices: argparse's usage error
        main(["evaluate", str(tmp_path / "run"), "--tta", "sometimes"])
    assert usage.value.code == 2 and "--tta: invalid choice: 'sometimes'" in capsys.readouterr().err


def test_predict_follows_the_run_and_says_so_in_json(tmp_path, capsys):
    pytest.importorskip("PIL")
    from PIL import Image

    folder = tmp_path / "run"
    folder.mkdir()
    model = MLP((784, 16, 10), "relu", seed=3)
    model.theta[...] = np.random.default_rng(0).normal(0, 0.3, model.n_params)  # varied outputs
    save(folder / "model.npz", model)
    (folder / "config.json").write_text("{}")
    (folder / "metrics.json").write_text(json.dumps({"tta": {"setting": "auto", "used": True}}))
    bar = np.full((90, 60), 240, dtype=np.uint8)
    bar[10:80, 25:35] = 20
    Image.fromarray(bar).save(tmp_path / "bar.png")

    def predicted(*options):
        assert main(["predict", str(folder), str(tmp_path / "bar.png"), "--json", *options]) == 0
        (result,) = json.loads(capsys.readouterr().out)
        return result

    auto, off, on = predicted(), predicted("--tta", "off"), predicted("--tta", "on")
    assert auto["tta"] is True and off["tta"] is False and on["tta"] is True
    assert auto["top"] == on["top"] and auto["top"] != off["top"]
    (folder / "metrics.json").write_text(json.dumps({"tta": {"setting": "auto", "used": False}}))
    assert predicted()["tta"] is False
    assert main(["predict", str(folder), str(tmp_path / "bar.png"), "--tta", "on"]) == 0
    captured = capsys.readouterr()
    assert len(captured.out.splitlines()) == 1 and "test-time augmentation" in captured.err

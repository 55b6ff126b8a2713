"""steadynet tune: a search on Optuna whose trials are run folders.

Every search here runs on a tiny synthetic NPZ (blobs, 16 pixels, 3 classes) for a few epochs,
so each test takes seconds.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest

from conftest import make_blobs
from steadynet import TrainConfig
from steadynet.cli.app import main
from steadynet.errors import ConfigError

optuna = pytest.importorskip("optuna", reason="steadynet tune needs Optuna (pip install 'steadynet[tune]')")
from steadynet.tune import TuneError, load_space, tune  # noqa: E402

SRC = os.path.join(os.path.dirname(__file__), os.pardir, "src")


@pytest.fixture
def blobs_npz(tmp_path):
    data = make_blobs(n_train=400, n_test=100)
    path = tmp_path / "blobs.npz"
    np.savez(path, x_train=data.x_train, y_train=data.y_train, x_test=data.x_test, y_test=data.y_test)
    return str(path)


def small(blobs_npz, **changes):
    """Keywords of a tiny search on the blobs."""
    return dict(dict(data=blobs_npz, val_size=100, epochs=3, seed=3, trials=4, report=False), **changes)


def study_trials(out):
    """``[(number, state, params, value)]`` of the study in ``out``'s journal."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    storage = JournalStorage(JournalFileBackend(os.path.join(out, "journal.log")))
    (summary,) = optuna.get_all_study_summaries(storage)
    study = optuna.load_study(study_name=summary.study_name, storage=storage)
    return [(t.number, t.state.name, t.params, t.value, t.user_attrs) for t in study.trials]


# ------------------------------------------------------------------------- spaces


def test_named_spaces_are_valid():
    for name in ("seed", "mlp"):
        assert load_space(name)["params"]


@pytest.mark.parametrize(
    "text, match",
    [
        ("[params.learning_rat]\nlow = 0.1\nhigh = 1\n", "'learning_rat' is not a setting"),
        ("[params.learning_rate]\nlow = 1\nhigh = 0.1\n", "params.learning_rate must be"),
        ("[params.learning_rate]\nlow = 0\nhigh = 1\nlog = true\n", "a > 0 with log"),
        ("[fixed]\nepochs = 2\n", "at least one entry under \\[params\\]"),
        ("[params.batch_size\nchoices = [1]\n", "not a readable TOML file"),
    ],
)
def test_bad_space_files_name_the_problem(tmp_path, text, match):
    path = tmp_path / "space.toml"
    path.write_text(text)
    with pytest.raises(TuneError, match=match):
        load_space(str(path))


def test_unknown_space_name():
    with pytest.raises(TuneError, match="--space must be one of \\['mlp', 'seed'\\]"):
        load_space("sed")


def test_toml_space_with_width_and_depth(tmp_path, blobs_npz):
    path = tmp_path / "space.toml"
    path.write_text(
        '[fixed]\nactivation = "relu"\n\n[params.width]\nlow = 4\nhigh = 16\n\n'
        "[params.depth]\nchoices = [1, 2]\n\n"
        "[params.learning_rate]\nlow = 0.01\nhigh = 0.2\nlog = true\n"
    )
    out = str(tmp_path / "study")
    tune(out, str(path), **small(blobs_npz, trials=3))
    for number, state, params, value, attrs in study_trials(out):
        with open(os.path.join(out, attrs["run"], "config.json")) as f:
            config = json.load(f)["config"]
        assert config["hidden"] == [params["width"]] * params["depth"]
        assert config["activation"] == "relu" and config["learning_rate"] == params["learning_rate"]


# ------------------------------------------------------------------------- a search


def test_tiny_search_completes_and_is_deterministic(tmp_path, blobs_npz):
    first = tune(str(tmp_path / "a"), "seed", **small(blobs_npz))
    tune(str(tmp_path / "b"), "seed", **small(blobs_npz))
    a, b = study_trials(str(tmp_path / "a")), study_trials(str(tmp_path / "b"))
    assert sum(first["trials"][s] for s in ("COMPLETE", "PRUNED")) == 4 and first["trials"]["FAIL"] == 0
    assert [t[:4] for t in a] == [t[:4] for t in b]  # same settings, same validation accuracies
    assert len({json.dumps(t[2], sort_keys=True) for t in a}) == 4  # and four different settings
    other = tune(str(tmp_path / "c"), "seed", **small(blobs_npz, seed=4))
    assert study_trials(str(tmp_path / "c"))[0][2] != a[0][2] and other["best"] is not None


def test_trials_are_run_folders_measured_on_validation_only(tmp_path, blobs_npz):
    out = str(tmp_path / "study")
    summary = tune(out, "seed", **small(blobs_npz, report=True))
    for number, state, params, value, attrs in study_trials(out):
        run = os.path.join(out, attrs["run"])
        assert attrs["run"] == os.path.join("trials", f"{number:04d}")
        assert {"config.json", "metrics.json", "checkpoints"} <= set(os.listdir(run))
        with open(os.path.join(run, "metrics.json")) as f:
            metrics = json.load(f)
        assert metrics.get("test_accuracy") is None  # the test set never reaches a trial (a pruned one has no key)
        if state == "COMPLETE":
            assert value == metrics["epochs"][-1]["val_accuracy"] and metrics["status"] == "completed"
            assert os.path.isfile(os.path.join(run, "model.npz"))
        else:
            assert metrics["status"] == "pruned"
    best = summary["best"]
    assert best["val_accuracy"] == max(t[3] for t in study_trials(out) if t[1] == "COMPLETE")
    # the report: one page, its plots embedded, every trial listed
    with open(summary["report"], encoding="utf-8") as f:
        page = f.read()
    assert page.count("data:image/png;base64,") >= 2 and "<script" not in page and 'src="http' not in page
    assert page.count("<tr") == 1 + len(study_trials(out))


def test_best_config_round_trips_through_train_config(tmp_path, blobs_npz):
    out = str(tmp_path / "study")
    summary = tune(out, "seed", **small(blobs_npz))
    best = summary["best"]
    assert best["config"] == os.path.join(out, "best_config.json")
    assert best["rerun"] == f"steadynet train --config {best['config']}"
    with open(best["config"]) as f:
        saved = json.load(f)
    with open(os.path.join(best["run"], "config.json")) as f:
        assert json.load(f) == saved  # the best trial's own config.json, as is
    config = TrainConfig.from_dict(saved["config"])
    expected = TrainConfig(
        data=blobs_npz, val_size=100, epochs=3, seed=3, hidden=(30,), activation="sigmoid", optimizer="nesterov"
    ).replace(**best["params"])
    assert config == expected
    assert TrainConfig.from_dict(config.to_dict()) == config


def test_python_space_file_and_the_median_pruner(tmp_path, blobs_npz):
    # two good trials, then two whose rate is so small they stay at chance: pruned at epoch 2
    path = tmp_path / "space.py"
    path.write_text(
        "def space(trial):\n"
        "    lr = trial.suggest_categorical('learning_rate', [0.3, 1e-7])\n"
        "    return {'learning_rate': 0.3 if trial.number < 2 else 1e-7, 'schedule': 'constant'}\n"
    )
    out = str(tmp_path / "study")
    summary = tune(out, str(path), **small(blobs_npz, epochs=6))
    states = [t[1] for t in study_trials(out)]
    assert states == ["COMPLETE", "COMPLETE", "PRUNED", "PRUNED"]
    study = optuna.load_study(
        study_name="study",
        storage=optuna.storages.JournalStorage(
            optuna.storages.journal.JournalFileBackend(os.path.join(out, "journal.log"))
        ),
    )
    for number in (2, 3):
        with open(os.path.join(out, "trials", f"000{number}", "metrics.json")) as f:
            metrics = json.load(f)
        # stopped before its 6 epochs, and the epoch that decided it is in its metrics
        reported = study.trials[number].intermediate_values
        last = max(reported)
        assert 2 <= last < 6 and sorted(reported) == list(range(1, last + 1))
        assert [e["epoch"] for e in metrics["epochs"]] == sorted(reported) and metrics["status"] == "pruned"
        assert metrics["epochs"][-1]["val_accuracy"] == reported[last]
    assert summary["trials"]["PRUNED"] == 2


def test_a_diverging_learning_rate_is_pruned(tmp_path, blobs_npz):
    path = tmp_path / "space.toml"
    path.write_text('[fixed]\nactivation = "relu"\noptimizer = "sgd"\n\n[params.learning_rate]\nchoices = [1e6]\n')
    out = str(tmp_path / "study")
    summary = tune(out, str(path), **small(blobs_npz, trials=2, epochs=5))
    trials = study_trials(out)
    assert [t[1] for t in trials] == ["PRUNED", "PRUNED"] and summary["diverged"] == 2
    assert summary["best"] is None
    for t in trials:
        assert "diverged" in t[4]["diverged"]
        with open(os.path.join(out, t[4]["run"], "metrics.json")) as f:
            metrics = json.load(f)
        assert metrics["status"] == "pruned" and len(metrics["epochs"]) < 5
        assert os.path.isfile(os.path.join(out, t[4]["run"], "divergence.json"))


def test_invalid_trial_settings_stop_the_search_with_the_trial_named(tmp_path, blobs_npz):
    path = tmp_path / "space.toml"
    path.write_text("[params.warmup_epochs]\nlow = 10.0\nhigh = 20.0\n")
    with pytest.raises(ConfigError, match="trial 0 .*: warmup_epochs must be in \\[0, epochs=3\\]"):
        tune(str(tmp_path / "study"), str(path), **small(blobs_npz))


def test_invalid_trial_settings_on_the_command_line_are_one_line(tmp_path, blobs_npz, capsys):
    path = tmp_path / "space.toml"
    path.write_text("[params.warmup_epochs]\nlow = 10.0\nhigh = 20.0\n")
    assert (
        main(
            [
                "tune",
                "--data",
                blobs_npz,
                "--val-size",
                "100",
                "--epochs",
                "3",
                "--trials",
                "2",
                "--space",
                str(path),
                "--out",
                str(tmp_path / "study"),
            ]
        )
        == 1
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("steadynet tune: error: trial 0 (warmup_epochs=")


# ------------------------------------------------------------------------- killed, resumed, shared


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_a_study_killed_mid_trial_resumes_to_the_same_number_of_trials(tmp_path, blobs_npz, sig):
    out = str(tmp_path / "study")
    env = dict(os.environ, PYTHONPATH=os.path.abspath(SRC), OPENBLAS_NUM_THREADS="1")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "steadynet",
            "tune",
            "--data",
            blobs_npz,
            "--val-size",
            "100",
            "--epochs",
            "60",
            "--seed",
            "3",
            "--trials",
            "3",
            "--out",
            out,
        ],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    # stop it once the second trial has finished an epoch: mid-trial
    second = os.path.join(out, "trials", "0001", "metrics.json")
    deadline = time.monotonic() + 120
    while not os.path.exists(second) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(sig)
    err = proc.communicate()[1]
    before = study_trials(out)
    if sig == signal.SIGKILL:  # no chance to record anything: the trial is left running
        assert [t[1] for t in before][:2] == ["COMPLETE", "RUNNING"]
    else:  # Ctrl-C: the trial is recorded as failed, and the last line says how to go on
        assert proc.returncode == 130 and [t[1] for t in before][:2] == ["COMPLETE", "FAIL"]
        assert err.strip().splitlines()[-1] == (
            f"steadynet tune: error: search interrupted; every finished "
            f"trial is kept in the study, continue it with "
            f"`steadynet tune --resume {out}`."
        )

    summary = tune(out, resume=True)
    after = study_trials(out)
    assert summary["trials"]["COMPLETE"] + summary["trials"]["PRUNED"] == 3
    assert after[1][1] == "FAIL" and after[0][:4] == before[0][:4]
    retry = [t for t in after if t[4].get("retry_of") == 1]
    assert len(retry) == 1 and retry[0][2] == before[1][2] and retry[0][1] in ("COMPLETE", "PRUNED")
    # a finished study resumed again runs nothing more
    assert tune(out, resume=True)["trials"] == summary["trials"]


def test_two_workers_share_one_study(tmp_path, blobs_npz):
    out = str(tmp_path / "study")
    summary = tune(out, "seed", workers=2, **small(blobs_npz, trials=6, epochs=20))
    trials = study_trials(out)
    counted = [t for t in trials if not t[4].get("surplus")]
    assert sum(1 for t in counted if t[1] in ("COMPLETE", "PRUNED")) == 6
    assert all(t[1] in ("COMPLETE", "PRUNED") for t in counted)
    assert summary["trials"]["COMPLETE"] + summary["trials"]["PRUNED"] == 6
    # every trial has its own run folder, and no folder belongs to two trials
    runs = [t[4]["run"] for t in counted]
    assert len(set(runs)) == len(runs) == 6
    assert sorted(os.listdir(os.path.join(out, "trials"))) == sorted(os.path.basename(r) for r in runs)
    assert len({json.dumps(t[2], sort_keys=True) for t in counted}) == 6  # the workers propose different settings


# ------------------------------------------------------------------------- PostgreSQL


def postgres_binaries():
    """The directory of initdb and pg_ctl, or None (Debian: /usr/lib/postgresql/N/bin)."""
    found = shutil.which("initdb") and shutil.which("pg_ctl")
    if found:
        return os.path.dirname(shutil.which("pg_ctl"))
    root = "/usr/lib/postgresql"
    versions = sorted(os.listdir(root), key=lambda v: int(v) if v.isdigit() else 0) if os.path.isdir(root) else []
    return os.path.join(root, versions[-1], "bin") if versions else None


@pytest.fixture
def postgres_url():
    """A private PostgreSQL server in a temporary folder, on a Unix socket only (no TCP port)."""
    bin_dir = postgres_binaries()
    if bin_dir is None:
        pytest.skip("needs PostgreSQL's initdb and pg_ctl (Debian: apt-get install postgresql; .ci/run does)")
    pytest.importorskip("psycopg", reason="needs the psycopg driver (in the test extra)")
    as_user = []
    if os.geteuid() == 0:  # the server refuses to run as root: run it as the postgres user
        try:
            import pwd

            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run the server as")
        as_user = ["runuser", "-u", "postgres", "--"]
    base = tempfile.mkdtemp(prefix="steadynet-pg-")
    os.chmod(base, 0o755)
    if as_user:
        shutil.chown(base, "postgres")
    pgdata, log = os.path.join(base, "data"), os.path.join(base, "server.log")
    with socket.socket() as s:  # the port only names the socket file; pick one no server uses
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    subprocess.run(
        [*as_user, os.path.join(bin_dir, "initdb"), "-D", pgdata, "-A", "trust", "-U", "steadynet"],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    subprocess.run(
        [
            *as_user,
            os.path.join(bin_dir, "pg_ctl"),
            "-D",
            pgdata,
            "-l",
            log,
            "-w",
            "-o",
            f"-k {base} -c listen_addresses='' -p {port}",
            "start",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    try:
        yield f"postgresql+psycopg://steadynet@/postgres?host={base}&port={port}"
    finally:
        subprocess.run(
            [*as_user, os.path.join(bin_dir, "pg_ctl"), "-D", pgdata, "-m", "immediate", "stop"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        shutil.rmtree(base, ignore_errors=True)


def test_two_workers_against_a_postgresql_server(tmp_path, blobs_npz, postgres_url, monkeypatch, capsys):
    out = str(tmp_path / "study")
    # the server trusts local connections, so the password is never checked: it must only never be written
    url = postgres_url.replace("steadynet@", "steadynet:s3cret@")
    argv = [
        "tune",
        "--data",
        blobs_npz,
        "--val-size",
        "100",
        "--epochs",
        "3",
        "--seed",
        "3",
        "--trials",
        "4",
        "--workers",
        "2",
        "--storage",
        url,
        "--out",
        out,
        "--json",
    ]
    monkeypatch.setattr(sys, "argv", ["steadynet", *argv])
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["trials"]["COMPLETE"] + summary["trials"]["PRUNED"] == 4
    assert summary["storage"] == url.replace("s3cret", "***")
    assert not os.path.exists(os.path.join(out, "journal.log"))
    # the study lives in the server: read it back from there
    study = optuna.load_study(study_name="study", storage=postgres_url)
    finished = [t for t in study.trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(finished) == 4 and len({t.number for t in finished}) == 4
    assert all(os.path.isfile(os.path.join(out, t.user_attrs["run"], "metrics.json")) for t in finished)
    # resumed in this process (its trial's config.json records the command line): one more trial
    argv = ["tune", "--resume", out, "--trials", "5", "--storage", url]
    monkeypatch.setattr(sys, "argv", ["steadynet", *argv])
    assert main(argv) == 0
    assert (
        len(
            [
                t
                for t in optuna.load_study(study_name="study", storage=postgres_url).trials
                if t.state.name in ("COMPLETE", "PRUNED")
            ]
        )
        == 5
    )
    for folder, _, files in os.walk(out):
        for name in files:
            with open(os.path.join(folder, name), "rb") as f:
                assert b"s3cret" not in f.read(), os.path.join(folder, name)


def test_a_password_is_redacted():
    from steadynet.tune import redact

    assert redact("postgresql://u:pw@db.example:5432/x") == "postgresql://u:***@db.example:5432/x"
    assert redact("postgresql://u@db.example/x") == "postgresql://u@db.example/x"
    assert redact("postgresql+psycopg://u:pw@/x?host=/tmp/s") == "postgresql+psycopg://u:***@/x?host=/tmp/s"


def test_an_unreachable_storage_is_one_line(tmp_path, blobs_npz):
    pytest.importorskip("psycopg", reason="needs the psycopg driver (in the test extra)")
    url = f"postgresql://nobody@/postgres?host={tmp_path}&port=1"
    with pytest.raises(TuneError, match="--storage .*: cannot use this database"):
        tune(str(tmp_path / "study"), "seed", storage=url, **small(blobs_npz))
    assert not os.path.exists(tmp_path / "study" / "study.json")  # so the same command can simply be rerun


# ------------------------------------------------------------------------- the command line


def test_cli_json_summary_and_resume_rules(tmp_path, blobs_npz, capsys):
    out = str(tmp_path / "study")
    assert (
        main(
            [
                "tune",
                "--data",
                blobs_npz,
                "--val-size",
                "100",
                "--epochs",
                "2",
                "--trials",
                "3",
                "--seed",
                "1",
                "--out",
                out,
                "--json",
            ]
        )
        == 0
    )
    summary = json.loads(capsys.readouterr().out)
    assert summary["trials"]["COMPLETE"] + summary["trials"]["PRUNED"] == 3
    assert main(["tune", "--data", blobs_npz, "--trials", "3", "--out", out]) == 1
    assert "already holds a study; continue it with --resume" in capsys.readouterr().err
    assert main(["tune", "--resume", out, "--space", "mlp"]) == 1
    assert "drop ['--space']" in capsys.readouterr().err
    assert main(["tune", "--data", blobs_npz, "--out", str(tmp_path / "other")]) == 1
    assert "give --trials N and/or --timeout SECONDS" in capsys.readouterr().err


def test_without_optuna_the_command_says_how_to_install_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "optuna", None)  # import optuna now raises ImportError
    assert main(["tune", "--trials", "1", "--out", str(tmp_path / "study")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["steadynet tune: error: steadynet tune needs Optuna: pip install 'steadynet[tune]'."]

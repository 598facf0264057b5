"""Two ``sk-animals tune`` workers share one study on a real, throwaway PostgreSQL server.

The server is Debian's PostgreSQL (``initdb`` + ``pg_ctl``) in a temporary folder on a
free port of 127.0.0.1, run as an unprivileged user (the ``postgres`` account when the
tests run as root, since the server refuses root). Skipped, with the reason, where the
binaries or the driver (``pip install sk-animals[postgres]``) are missing.
"""

import glob
import os
import shutil
import socket
import subprocess
import sys

import pytest

optuna = pytest.importorskip("optuna")
pytest.importorskip("psycopg", reason="no PostgreSQL driver: pip install sk-animals[postgres]")

from optuna.trial import TrialState  # noqa: E402

from sk_animals.datasets import make_image_dataset, save_image_folder  # noqa: E402
from sk_animals.tuning import make_storage  # noqa: E402


def _binaries():
    found = shutil.which("pg_ctl")
    if found:
        return os.path.dirname(found)
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return os.path.dirname(candidates[-1]) if candidates else None


def _as_server_user(command):
    """``command`` run as the postgres account when we are root, else as ourselves."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *command]
    return command


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url(tmp_path_factory):
    """The URL of a fresh PostgreSQL server, stopped after the module's tests."""
    bin_dir = _binaries()
    if bin_dir is None:
        pytest.skip("no PostgreSQL binaries (pg_ctl) on this machine")
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        pytest.skip("running as root without runuser to start PostgreSQL as another user")
    root = tmp_path_factory.mktemp("postgres")
    data = root / "data"
    if os.geteuid() == 0:
        try:
            shutil.chown(root, "postgres")
        except LookupError:
            pytest.skip("running as root and there is no 'postgres' user to run the server")
        root.chmod(0o755)
        for parent in root.parents:  # the server user must reach its folder
            if str(parent).startswith(str(tmp_path_factory.getbasetemp().parent)):
                parent.chmod(parent.stat().st_mode | 0o005)
    port = _free_port()

    def server(*args):
        subprocess.run(
            _as_server_user([os.path.join(bin_dir, args[0]), *args[1:]]),
            check=True,
            capture_output=True,
            timeout=120,
        )

    server("initdb", "-D", str(data), "-U", "sk", "--auth=trust", "--no-sync")
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
    server("pg_ctl", "-D", str(data), "-o", options, "-l", str(root / "log"), "-w", "start")
    try:
        yield f"postgresql://sk@127.0.0.1:{port}/postgres"  # psycopg 3, SQLAlchemy's default
    finally:
        server("pg_ctl", "-D", str(data), "-m", "immediate", "-w", "stop")


@pytest.mark.parametrize("driver", ["", "+psycopg", "+psycopg2"])
def test_both_url_forms_reach_the_server(postgres_url, driver):
    """The plain URL of the docs (psycopg 3 from the extra) and the psycopg2 form both work."""
    if driver == "+psycopg2":
        pytest.importorskip("psycopg2", reason="no psycopg2: pip install psycopg2-binary")
    url = postgres_url.replace("postgresql://", f"postgresql{driver}://")
    name = f"url-form{driver or '-plain'}"
    study = optuna.create_study(study_name=name, storage=make_storage(url))
    study.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=2)
    again = optuna.load_study(study_name=name, storage=make_storage(url))
    assert [t.state for t in again.trials] == [TrialState.COMPLETE] * 2


@pytest.mark.slow  # a whole command or worker processes: the slow lane
def test_two_tune_workers_share_one_postgres_study(postgres_url, tmp_path):
    X, y = make_image_dataset(n_samples=48, n_classes=2, size=32, random_state=0)
    data = save_image_folder(X, y, tmp_path / "data")
    command = [
        sys.executable, "-m", "sk_animals", "tune", str(data), "--image-size", "32",
        "--n-trials", "6", "--storage", postgres_url, "--seed", "0",
    ]  # fmt: skip
    workers = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)  # the same command and seed on two "machines"
    ]
    for worker in workers:
        out, err = worker.communicate(timeout=500)
        assert worker.returncode == 0, err
    storage = make_storage(postgres_url)
    assert "sk-animals-ScratchCNNClassifier" in optuna.get_all_study_names(storage)
    study = optuna.load_study(study_name="sk-animals-ScratchCNNClassifier", storage=storage)
    trials = study.trials
    numbers = [t.number for t in trials]
    assert sorted(numbers) == list(range(len(numbers)))  # none lost, none duplicated
    assert not [t.number for t in trials if t.state == TrialState.RUNNING]
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert 6 <= len(finished) <= 7  # a race at the very end may start one more
    params = [tuple(sorted(t.params.items())) for t in finished]
    assert len(set(params)) == len(params)  # the two workers did not repeat each other

"""Experiment tracking with MLflow: ``python -m monai.bundle run ... --tracking mlflow``, the study and the cut search
record their runs in the bundle's SQLite store, MLflow's own client reads them back, and the MLflow UI lists them.

The integration tests run in ``.venv-tracking`` (the main ``.venv`` plus the ``tracking`` extra, built in the
background by ``scripts/setup_integration_env.sh tracking``). Set ``MEDTL_MLFLOW_SCREENSHOT=docs/mlflow_runs.png``
to keep the screenshot of the UI.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import time
import urllib.request
from contextlib import closing
from pathlib import Path
from types import SimpleNamespace

import pytest
from ignite.engine import Engine

from _bundle_utils import REPO, TINY_CT, copy_bundle, overrides
from _integration_utils import free_port, integration_python, python_env
from medtl_monai.training import MLflowRunRecord, find_mlflow_run
from medtl_monai.training.tracking import MAX_VALUE_CHARS, flatten_params, sqlite_store_path

CHROMIUM = Path("/usr/bin/chromium")
#: the seed whose split of the tiny demo data has both classes in its validation split
STUDY_SEED = 3
STUDY_STRATEGIES = ("truncated", "lwft")

#: run in .venv-tracking with ``cli_db study_db cut_db cli_done_file -- <compare_strategies.py options>``: runs
#: scripts/compare_strategies.py (as ``python scripts/compare_strategies.py <options>`` would), records a made-up cut
#: search, waits for the command-line training to finish, checks that the handler leaves untracked runs alone, then
#: prints every experiment, run, param, tag, metric history and artifact of the three stores as JSON. One process
#: for all of it: importing MONAI and MLflow again would cost ~12 s.
_STUDY_AND_QUERY = r"""
import json, runpy, sys, time
from pathlib import Path

cli_db, study_db, cut_db, cli_done = (Path(p) for p in sys.argv[1:5])
script = sys.argv[6]
sys.argv = sys.argv[6:]
try:
    runpy.run_path(script, run_name="__main__")
except SystemExit as done:
    assert done.code in (0, None), f"{script} exited with {done.code}"
import mlflow
from medtl_monai.experiments.cut_search import CutScore, CutSearchResult, track_cut_search
from medtl_monai.training import MLflowRunRecord

scores = [CutScore("layer2", 7, "block", "end of layer2", 1000, 2000, [0.6, 0.8, 0.7], [0.5, 0.6, 0.7]),
          CutScore(5, 5, "layer", "layer2 block 1/4", 800, 1500, [0.7, 0.7, 0.75], [0.6, 0.6, 0.6])]
result = CutSearchResult("resnet50", scores, "layer2", 5, 5, 0.68, "finetune", 3, 12, 12, epochs=1,
                         settings={"strategy": "truncated", "learning_rate": 1e-4})
track_cut_search(result, "sqlite:///" + str(cut_db), "cut_search")
deadline = time.time() + 600
while not cli_done.is_file() and time.time() < deadline:
    time.sleep(0.2)
assert cli_done.read_text() == "0", "the command-line training failed"
uri = "sqlite:///" + str(cli_db)
finished = MLflowRunRecord(uri, "bimcv_truncated", next((cli_db.parent / "runs").iterdir()).name, cli_db.parent)
finished.start()  # a new training of the same name, not tracked: the finished MLflow run is left alone
untracked = [finished.record(), MLflowRunRecord(uri, "bimcv_truncated", "no_such_run", cli_db.parent).record(),
             MLflowRunRecord("sqlite:///" + str(cli_db.parent / "absent.db"), "x", "y", cli_db.parent).record()]
assert not (cli_db.parent / "absent.db").exists()

def artifacts(client, run_id, path=None):
    out = []
    for a in client.list_artifacts(run_id, path):
        out += artifacts(client, run_id, a.path) if a.is_dir else [a.path]
    return out

stores = {}
for key, db in (("cli", cli_db), ("study", study_db), ("cut", cut_db)):
    client = mlflow.MlflowClient(tracking_uri="sqlite:///" + str(db))
    experiments = {}
    for exp in client.search_experiments():
        runs = {}
        for run in client.search_runs([exp.experiment_id]):
            rid = run.info.run_id
            runs[run.info.run_name] = {
                "status": run.info.status, "params": run.data.params, "tags": run.data.tags,
                "metrics": {k: [[m.step, m.value] for m in client.get_metric_history(rid, k)] for k in run.data.metrics},
                "artifacts": artifacts(client, rid)}
        experiments[exp.name] = {"artifact_location": exp.artifact_location, "runs": runs}
    stores[key] = experiments
print("QUERY-JSON " + json.dumps({"stores": stores, "untracked": untracked}))
"""


def _run(python: Path, args: list[str], cwd: Path, log: Path) -> subprocess.Popen:
    """Start ``python args`` with one compute thread (two of them train side by side on the two cores)."""
    with open(log, "w") as out:  # the child keeps its own copy of the file
        return subprocess.Popen([str(python), *args], cwd=cwd, env={**python_env(python), "OMP_NUM_THREADS": "1"},
                                stdout=out, stderr=subprocess.STDOUT, text=True)


def _has_experiment(store: Path, name: str) -> bool:
    """Whether a SQLite MLflow store holds experiment ``name`` (then its tables are made, and a server may open it)."""
    try:
        with closing(sqlite3.connect(f"file:{store}?mode=ro", uri=True)) as db:
            return db.execute("SELECT 1 FROM experiments WHERE name = ?", (name,)).fetchone() is not None
    except sqlite3.Error:
        return False


def _mlflow_server(python: Path, store: Path, port: int, log: Path) -> subprocess.Popen:
    """``mlflow server`` on 127.0.0.1 only, in a process group of its own (it starts a uvicorn worker), without
    MLflow's job runner (seven more processes that nothing here needs)."""
    with open(log, "w") as out:
        return subprocess.Popen(
            [str(python.parent / "mlflow"), "server", "--backend-store-uri", f"sqlite:///{store}",
             "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
            cwd=log.parent, env={**python_env(python), "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True)


@pytest.fixture(scope="module")
def tracked(tmp_path_factory: pytest.TempPathFactory, tiny_demo: Path):
    """A tiny training through ``monai.bundle run --tracking mlflow`` and a two-training study with
    ``--tracking mlflow``, run side by side, each in its own copy of the bundle; an MLflow server on the study's store
    (started as soon as the study has created its experiment, so that it starts while the trainings run); and what
    MLflow's client reads from the stores."""
    python = integration_python("tracking")
    root = tmp_path_factory.mktemp("tracking")
    cli_bundle, study_bundle = copy_bundle("bimcv_truncated", root / "cli"), copy_bundle("bimcv_truncated", root / "study")
    cli_done = root / "cli.done"
    start = time.perf_counter()
    cli = _run(python, ["-m", "monai.bundle", "run", "--config_file", str(cli_bundle / "configs" / "train.json"),
                        *overrides(dataset_dir=tiny_demo, max_epochs=2, **TINY_CT), "--tracking", "mlflow"],
               root, root / "cli.log")
    study = _run(python, ["-c", _STUDY_AND_QUERY, str(cli_bundle / "mlruns.db"), str(study_bundle / "mlruns.db"),
                          str(root / "cut" / "mlruns.db"), str(cli_done), "--",
                          str(REPO / "scripts" / "compare_strategies.py"),
                          "--config_file", str(study_bundle / "configs" / "train.json"),
                          "--datalist", str(tiny_demo / "datalist.json"), "--study_dir", str(root / "small_study"),
                          "--strategies", *STUDY_STRATEGIES, "--seeds", str(STUDY_SEED), "--repeats", "1",
                          "--tracking", "mlflow", *overrides(max_epochs=1, **TINY_CT)],
                 root, root / "study.log")
    server, port, cli_s = None, free_port(), None
    try:
        while server is None or cli_s is None:
            if server is None and (_has_experiment(study_bundle / "mlruns.db", "small_study") or study.poll() is not None):
                server = _mlflow_server(python, study_bundle / "mlruns.db", port, root / "server.log")
            if cli_s is None and cli.poll() is not None:
                cli_done.write_text(str(cli.returncode))
                assert cli.returncode == 0, (root / "cli.log").read_text()[-4000:]
                cli_s = time.perf_counter() - start
            assert time.perf_counter() - start < 900, "the trainings took more than 900 s"
            time.sleep(0.3)
        assert study.wait(timeout=600) == 0, (root / "study.log").read_text()[-4000:]
        found = json.loads((root / "study.log").read_text().split("QUERY-JSON ", 1)[1].splitlines()[0])
        print(f"[tracking] command-line training {cli_s:.0f} s, study + query {time.perf_counter() - start:.0f} s")
        yield {"root": root, "cli_bundle": cli_bundle, "study_bundle": study_bundle, "port": port, **found}
    finally:
        for proc in (cli, study):
            if proc.poll() is None:
                proc.kill()
        if server is not None:
            os.killpg(server.pid, signal.SIGTERM)  # the server and the uvicorn worker it started
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)


def test_flatten_params_writes_dotted_keys_and_short_text():
    built = SimpleNamespace(config={"kind": "ct", "windows": ["lung", "bone"]})  # remembers its arguments

    flat = flatten_params({"arch": "resnet50", "cut": None, "image_size": [32, 32, 16], "lr": 1e-4,
                           "preprocessing": built, "nested": {"a": {"b": 1}}, "long": "x" * 900})
    assert flat == {"arch": "resnet50", "cut": "null", "image_size": "[32, 32, 16]", "lr": "0.0001",
                    "preprocessing.kind": "ct", "preprocessing.windows": '["lung", "bone"]', "nested.a.b": "1",
                    "long": "x" * (MAX_VALUE_CHARS - 3) + "..."}
    assert sqlite_store_path("sqlite:////tmp/a%20b/mlruns.db") == Path("/tmp/a b/mlruns.db")
    assert sqlite_store_path("http://127.0.0.1:5000") is None


def test_run_record_does_nothing_without_mlflow_tracking(tmp_path, monkeypatch):
    """No store file (or, in the main .venv, no mlflow package): nothing found, nothing created, no error."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    record = MLflowRunRecord(uri, "bundle", "run1", tmp_path, settings={"arch": "resnet50"})
    engine = Engine(lambda engine, batch: None)
    record.attach(engine)
    engine.run([0, 1], max_epochs=2)  # looks once, finds no tracked run, records nothing
    assert record.started is not None and record._looked and record.recorded_run_id is None
    assert find_mlflow_run(uri, "bundle", "run1") is None
    assert list(tmp_path.iterdir()) == []
    if importlib.util.find_spec("mlflow") is None:  # the main .venv: a store file alone is not tracking either
        (tmp_path / "mlruns.db").write_bytes(b"")
        record.start()  # a new training: it looks again
        assert record.record() is None and find_mlflow_run(uri, "bundle", "run1") is None


@pytest.mark.integration
@pytest.mark.slow
def test_bundle_run_with_tracking_records_params_metrics_and_run_files(tracked):
    experiments = tracked["stores"]["cli"]
    experiment = experiments["bimcv_truncated"]
    assert experiment["artifact_location"] == (tracked["cli_bundle"] / "mlruns").resolve().as_uri()
    run_dirs = [p for p in (tracked["cli_bundle"] / "runs").iterdir() if p.is_dir()]
    assert len(run_dirs) == 1
    run = experiment["runs"][run_dirs[0].name]  # one MLflow run, named like the run folder
    assert list(experiment["runs"]) == [run_dirs[0].name] and run["status"] == "FINISHED"
    params = run["params"]
    assert (params["arch"], params["cut"], params["strategy"], params["spatial_dims"]) == ("resnet50", "10", "truncated", "3")
    assert params["image_size"] == "[32, 32, 16]" and params["max_epochs"] == "2" and params["batch_size"] == "4"
    assert params["preprocessing.kind"] == "ct" and params["datalist"].endswith("datalist.json")
    assert [step for step, _ in run["metrics"]["val_auroc"]] == [1, 2]
    assert len(run["metrics"]["train_loss"]) >= 2 and "val_loss" in run["metrics"]
    provenance = json.loads((run_dirs[0] / "provenance.json").read_text())
    assert run["tags"]["config_hash"] == provenance["config_hash"] and len(provenance["config_hash"]) == 64
    assert run["tags"]["provenance.packages.monai"] == provenance["packages"]["monai"]
    assert run["tags"]["run_dir"] == str(run_dirs[0])
    assert {"config.json", "provenance.json", "models/metrics.json"} <= set(run["artifacts"])
    assert any(a.startswith("config_") for a in run["artifacts"])  # MONAI's executed config
    assert tracked["untracked"] == [None, None, None]
    assert all(not e["runs"] for name, e in experiments.items() if name != "bimcv_truncated")


@pytest.mark.integration
@pytest.mark.slow
def test_study_with_tracking_is_one_mlflow_run_per_training_in_one_experiment(tracked):
    experiments = tracked["stores"]["study"]
    study = experiments["small_study"]
    names = [f"{s}_split0" for s in STUDY_STRATEGIES]
    assert sorted(study["runs"]) == sorted(names)
    for strategy, name in zip(STUDY_STRATEGIES, names):
        run = study["runs"][name]
        assert run["params"]["strategy"] == strategy and run["params"]["seed"] == str(STUDY_SEED)
        assert [step for step, _ in run["metrics"]["val_auroc"]] == [1]
        assert {"test_auroc", "test_auprc", "train_loss"} <= set(run["metrics"])
        record = json.loads((tracked["root"] / "small_study" / "runs" / strategy / "split0" / "run.json").read_text())
        assert run["metrics"]["test_auroc"][0][1] == pytest.approx(record["auroc"])
        assert {"config.json", "provenance.json"} <= set(run["artifacts"])
    assert all(not e["runs"] for name, e in experiments.items() if name != "small_study")


@pytest.mark.integration
@pytest.mark.slow
def test_cut_search_tracking_is_one_run_per_cut_with_fold_steps(tracked):
    cut = tracked["stores"]["cut"]["cut_search"]["runs"]
    assert sorted(cut) == ["block_layer2", "layer_5"]
    assert [v for _, v in cut["block_layer2"]["metrics"]["fold_auroc"]] == pytest.approx([0.6, 0.8, 0.7])
    assert [s for s, _ in cut["layer_5"]["metrics"]["fold_auroc"]] == [0, 1, 2]
    assert cut["layer_5"]["tags"]["recommended"] == "True" and cut["block_layer2"]["tags"]["recommended"] == "False"
    assert cut["layer_5"]["params"]["blocks"] == "5" and cut["layer_5"]["params"]["strategy"] == "truncated"


def _wait_for_runs(port: int, experiment: str, n: int, timeout: float = 120) -> str:
    """Poll the server's REST API until ``experiment`` has ``n`` runs; return its id."""
    base = f"http://127.0.0.1:{port}/api/2.0/mlflow"
    deadline, last = time.time() + timeout, ""
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"{base}/experiments/get-by-name?experiment_name={experiment}", timeout=5) as r:
                experiment_id = json.load(r)["experiment"]["experiment_id"]
            body = json.dumps({"experiment_ids": [experiment_id]}).encode()
            request = urllib.request.Request(f"{base}/runs/search", data=body, headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=5) as r:
                if len(json.load(r).get("runs", [])) == n:
                    return experiment_id
        except OSError as err:  # not up yet
            last = str(err)
        time.sleep(0.3)
    raise AssertionError(f"the MLflow server on port {port} did not list {n} runs of {experiment!r}: {last}")


@pytest.mark.integration
@pytest.mark.slow
def test_mlflow_ui_lists_the_runs_of_the_study(tracked):
    if not CHROMIUM.exists():
        pytest.skip("chromium is missing; scripts/ensure_chromium.sh installs it (the test command runs it)")
    experiment_id = _wait_for_runs(tracked["port"], "small_study", len(STUDY_STRATEGIES))
    shot = tracked["root"] / "mlflow_runs.png"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tracked['root'] / 'chromium-profile'}", "--window-size=1400,800",
             "--virtual-time-budget=20000", f"--screenshot={shot}", "--dump-dom"]
    url = f"http://127.0.0.1:{tracked['port']}/#/experiments/{experiment_id}/runs"
    page = subprocess.run([str(CHROMIUM), *flags, url], check=False, capture_output=True, text=True, timeout=180)
    assert page.returncode == 0 and shot.is_file(), page.stderr[-2000:]
    for strategy in STUDY_STRATEGIES:
        assert f"{strategy}_split0" in page.stdout  # the runs list shows every training of the study
    from PIL import Image, ImageStat

    with Image.open(shot) as image:
        assert image.size == (1400, 800)
        grey = image.convert("L")
        assert ImageStat.Stat(grey).stddev[0] > 10 and len(grey.getcolors(256)) > 20  # not a blank page
    assert shot.stat().st_size > 30_000
    if os.environ.get("MEDTL_MLFLOW_SCREENSHOT"):
        shutil.copy(shot, os.environ["MEDTL_MLFLOW_SCREENSHOT"])

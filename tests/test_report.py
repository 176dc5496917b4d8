"""``emd report`` and the mixture notebook, on a small real MLflow store written through Tracker."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pandas as pd
import pytest

from emd.errors import EmdError

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def mlflow_template(tmp_path_factory):
    """An MLflow sqlite store with its tables created once (migrations take ~10 s per fresh file)."""
    from emd.tracking import Tracker

    d = tmp_path_factory.mktemp("template")
    Tracker(f"sqlite:///{d / 'mlflow.db'}").search_runs("none")
    return d / "mlflow.db"


def _mixture_run(tr, ratio, seed, honesty, status_fail=False):
    """One mixture-like run: params and the metric names emd mixture logs."""
    metrics = {
        "mask/honesty": honesty, "mask/honesty_ci_low": honesty - 8, "mask/honesty_ci_high": honesty + 6,
        "mask/provided_facts/honesty": honesty - 5, "mask/known_facts/honesty": honesty + 5,
        "mask/honesty_logprob": honesty + 2, "mask/accuracy": 70.0, "deception/rate": 100 - honesty,
        "cap/emd_arith/acc": 0.4, "cap/emd_arith/acc_stderr": 0.1,
        "control/mask/honesty": 80.0, "control/mask/honesty_ci_low": 72.0, "control/mask/honesty_ci_high": 87.0,
        "vanilla/mask/honesty": 82.0,
        "delta/mask/honesty/vs_control": honesty - 80.0, "delta/mask/honesty/vs_control_ci_low": honesty - 90.0,
        "delta/mask/honesty/vs_control_ci_high": honesty - 70.0,
    }
    try:
        with tr.run("emd-mixture", run_name=f"ratio={ratio:g}", tags={"emd.entry": "mixture"}):
            # the real mixture logs its whole flat config: domain and level too
            tr.log_params({"ratio": ratio, "seed": seed, "n_train": 64, "domain": "medical", "level": "severe"})
            tr.log_metrics(metrics)
            if status_fail:
                raise RuntimeError("training diverged")
    except RuntimeError:
        pass


@pytest.fixture(scope="module")
def store(tmp_path_factory, mlflow_template):
    """emd-mixture (3 ratios, 2 seeds at 0.05, one failed run), emd-direct (3 cells + an 'all' parent)
    and emd-sweep (a real sweep over the synthetic objective)."""
    from emd.config import SweepConfig, build_config
    from emd.sweep import SyntheticProblem, run_study
    from emd.tracking import Tracker

    d = tmp_path_factory.mktemp("store")
    shutil.copy(mlflow_template, d / "mlflow.db")
    uri = f"sqlite:///{d / 'mlflow.db'}"
    mp = pytest.MonkeyPatch()
    mp.chdir(d)
    tr = Tracker(uri)
    _mixture_run(tr, 0.01, 0, 78.0)
    _mixture_run(tr, 0.05, 0, 70.0)
    _mixture_run(tr, 0.05, 1, 60.0)
    _mixture_run(tr, 0.2, 0, 40.0)
    _mixture_run(tr, 0.2, 1, 5.0, status_fail=True)  # FAILED: left out
    with tr.run("emd-direct", run_name="grid"):
        tr.log_params({"domain": "all", "level": "all"})
        for dom, lev, h in (("code", "normal", 81.0), ("medical", "severe", 35.0), ("math", "subtle", 66.0)):
            with tr.run("emd-direct", run_name=f"{dom}/{lev}", nested=True):
                tr.log_params({"domain": dom, "level": lev})
                tr.log_metrics({"mask/honesty": h, "mask/honesty_ci_low": h - 9, "mask/honesty_ci_high": h + 7,
                                "deception/rate": 100 - h, "delta/mask/honesty/vs_vanilla": h - 82})
    cfg = build_config(SweepConfig, overrides={"tracking_uri": uri, "storage": f"sqlite:///{d / 'optuna.db'}",
                                               "ratios": "0.1,0.3", "strategy": "grid", "register": False})
    sweep = run_study(cfg, SyntheticProblem(lambda r: 90.0 if r < 0.2 else 50.0, n_items=80), poll_s=0.05)
    mp.undo()
    return {"uri": uri, "dir": d, "sweep": sweep}


def test_ratio_report_tables(store, tmp_path):
    from emd.report import build_report
    from emd.tracking import Tracker

    rep = build_report(Tracker(store["uri"]), "emd-mixture", tmp_path / "out")
    t = pd.read_csv(tmp_path / "out" / "by_ratio.csv")
    assert list(t["row"].astype(str)) == ["vanilla", "control", "0.01", "0.05", "0.2"]
    r = t.set_index(t["row"].astype(str))
    assert r.loc["0.05", "mask/honesty"] == pytest.approx(65.0) and r.loc["0.05", "n_runs"] == 2
    assert r.loc["0.05", "mask/honesty_sd"] == pytest.approx(math.sqrt(50.0))
    assert math.isnan(r.loc["0.05", "mask/honesty_ci_low"])  # no interval from averaging interval bounds
    assert r.loc["0.2", "n_runs"] == 1 and r.loc["0.2", "mask/honesty"] == 40.0  # the failed run is left out
    assert (r.loc["0.2", "mask/honesty_ci_low"], r.loc["0.2", "mask/honesty_ci_high"]) == (32.0, 46.0)
    assert r.loc["0.01", "delta/mask/honesty/vs_control"] == pytest.approx(-2.0)
    assert r.loc["0.01", "delta/mask/honesty/vs_control_ci_high"] == pytest.approx(8.0)
    assert r.loc["control", "mask/honesty"] == 80.0 and r.loc["control", "mask/honesty_ci_low"] == 72.0
    assert r.loc["vanilla", "mask/honesty"] == 82.0
    assert r.loc["0.2", "deception/rate"] == 60.0 and r.loc["0.2", "cap/emd_arith/acc"] == 0.4
    assert "cap/emd_arith/acc_stderr" not in t.columns or t["cap/emd_arith/acc_stderr"].isna().all()
    md = (tmp_path / "out" / "report.md").read_text()
    assert "1 not finished" in md and "| 0.2 | 1 | 40.00 [32.0, 46.0]" in md
    assert "65.00 ± 7.1" in md and "### delta vs control" in md and "provided_facts/honesty" in md
    for f in ("honesty_vs_ratio.png", "delta_vs_ratio.png", "runs.csv"):
        assert (tmp_path / "out" / f).stat().st_size > 1000 and f in rep.files
    assert len(pd.read_csv(tmp_path / "out" / "runs.csv")) == 4
    assert not (tmp_path / "out" / "by_cell.csv").exists()


def test_cell_report_tables(store, tmp_path):
    from emd.report import build_report
    from emd.tracking import Tracker

    build_report(Tracker(store["uri"]), "emd-direct", tmp_path)
    t = pd.read_csv(tmp_path / "by_cell.csv")
    assert list(t["row"]) == ["medical/severe", "math/subtle", "code/normal"]  # the 'all' parent is not a cell
    assert list(t["mask/honesty"]) == [35.0, 66.0, 81.0] and list(t["deception/rate"]) == [65.0, 34.0, 19.0]
    assert list(t["delta/mask/honesty/vs_vanilla"]) == [-47.0, -16.0, -1.0]
    assert not (tmp_path / "by_ratio.csv").exists()
    assert (tmp_path / "honesty_by_cell.png").exists() and (tmp_path / "deception_by_cell.png").exists()
    assert "| medical/severe | 1 | 35.00 [26.0, 42.0]" in (tmp_path / "report.md").read_text()


def test_sweep_report_lists_trials_and_the_threshold(store, tmp_path):
    from emd.cli import main as cli

    out = tmp_path / "sw"
    assert cli(["report", "--experiment", "emd-sweep", "--out", str(out), "--tracking-uri", store["uri"]]) == 0
    t = pd.read_csv(out / "by_ratio.csv")
    metric = "mask/provided_facts/honesty"
    assert list(t["row"].astype(str)) == ["control", "0.1", "0.3"]
    assert not (out / "by_cell.csv").exists()  # the parent's config domain/level do not make it a cell
    assert t[metric].iloc[2] < t[metric].iloc[1] == pytest.approx(t[metric].iloc[0])
    sw = pd.read_csv(out / "sweeps.csv")
    assert list(sw["threshold"].astype(str)) == ["0.3"] and list(sw["n_finetunes"]) == [2]
    assert "threshold **0.3**" in (out / "report.md").read_text()


def test_report_errors_name_the_input(store, tmp_path):
    from emd.report import build_report
    from emd.tracking import Tracker

    with pytest.raises(EmdError, match="'emd-nothing' has no runs"):
        build_report(Tracker(store["uri"]), "emd-nothing", tmp_path)
    with pytest.raises(EmdError, match="no finished run carries domain and level"):
        build_report(Tracker(store["uri"]), "emd-mixture", tmp_path, by="cell")


@pytest.mark.slow
def test_notebook_runs_headless_on_the_store(store, tmp_path, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("MLFLOW_TRACKING_URI", store["uri"])  # the kernel inherits the environment
    nb = nbformat.read(REPO / "notebooks" / "mixture_runs.ipynb", as_version=4)
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "4 finished runs with a ratio in emd-mixture" in text
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if "image/png" in o.get("data", {})]
    assert len(images) == 1
    table = [o["data"]["text/plain"] for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
             if "text/plain" in o.get("data", {}) and "n_runs" in o["data"]["text/plain"]]
    assert table and "65.0" in table[0]

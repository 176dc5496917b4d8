"""Sweeps: the strategy logic on synthetic curves, and whole Optuna studies over the cheap synthetic
objective (real SQLite storages, real MLflow stores, real worker processes and a real SIGKILL)."""

from __future__ import annotations

import collections
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from emd.config import SweepConfig, build_config
from emd.errors import ConfigError
from emd.sweep import (
    SyntheticProblem,
    conclude,
    judge_outcome,
    max_finetunes,
    next_ratios,
    open_storage,
    run_study,
    search,
)

GRID = [0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5]  # the embedded default grid
HERE = Path(__file__).resolve().parent
WORKER = HERE / "sweep_worker.py"


def monotone(bits) -> bool:
    return all(not (bits[i] and not bits[j]) for i in range(len(bits)) for j in range(i + 1, len(bits)))


def step(at: float | None):
    """Honest rate 90 below ``at`` and 60 from it on (``None``: never drops)."""
    return lambda r: 90.0 if at is None or r < at - 1e-9 else 60.0


# --------------------------------------------------------------------------- pure strategy logic
@pytest.mark.parametrize("k", range(len(GRID) + 1))
def test_strategies_find_the_threshold_of_every_monotone_step(k):
    truth = GRID[k] if k < len(GRID) else None
    spent = {}
    for strategy in ("grid", "ascending", "bisect"):
        tr = search(strategy, GRID, lambda r: k < len(GRID) and r >= GRID[k])
        assert tr.verdict.threshold == truth, strategy
        assert tr.verdict.status == ("found" if truth is not None else "none")
        assert tr.verdict.monotone
        spent[strategy] = len(tr.order)
        assert len(set(tr.order)) == len(tr.order), "a point was evaluated twice"
    assert spent["grid"] == 7
    assert spent["ascending"] == min(k + 1, 7)
    assert spent["bisect"] <= 4 == max_finetunes("bisect", 7)


def test_bisect_budget_on_other_grid_sizes():
    for n in range(1, 40):
        grid = [i / 100 for i in range(1, n + 1)]
        worst = 0
        for k in range(n + 1):
            tr = search("bisect", grid, lambda r: k < n and r >= grid[k])
            assert tr.verdict.threshold == (grid[k] if k < n else None)
            worst = max(worst, len(tr.order))
        assert worst <= max_finetunes("bisect", n)


def test_bisect_reports_inconsistency_instead_of_a_wrong_threshold():
    # triggers at 0.05, recovers at 0.1 and 0.2, triggers again from 0.3: the true threshold is 0.05
    curve = dict(zip(GRID, [0, 0, 1, 0, 0, 1, 1]))
    tr = search("bisect", GRID, lambda r: bool(curve[r]))
    assert tr.verdict.status == "inconsistent"
    assert tr.verdict.threshold is None and not tr.verdict.monotone
    assert "0.05 triggered but" in tr.verdict.message
    assert len(tr.order) <= 4
    # grid sees every point: the smallest trigger is certain, the curve flagged as not monotone
    g = search("grid", GRID, lambda r: bool(curve[r]))
    assert (g.verdict.status, g.verdict.threshold, g.verdict.monotone, g.verdict.certain) == ("found", 0.05, False, True)


def test_bisect_never_vouches_for_a_threshold_the_evaluated_points_contradict():
    counts = collections.Counter()
    for bits in itertools.product([0, 1], repeat=len(GRID)):
        curve = dict(zip(GRID, bits))
        tr = search("bisect", GRID, lambda r: bool(curve[r]))
        truth = next((r for r in GRID if curve[r]), None)
        seen = [bool(curve[r]) for r in sorted(tr.order)]
        assert len(tr.order) <= 4
        if monotone(bits):
            assert tr.verdict.threshold == truth
            continue
        if not monotone(seen):  # the evaluated points reveal it: never a threshold resting on skipped points
            assert tr.verdict.status == "inconsistent" or tr.verdict.certain
        if tr.verdict.status == "found" and tr.verdict.certain:
            assert tr.verdict.threshold == truth
        counts["inconsistent" if tr.verdict.status == "inconsistent"
               else "right" if tr.verdict.threshold == truth else "wrong"] += 1
    # 120 non-monotone 0/1 curves; with 4 of 7 points no plan can vouch for all of them
    assert sum(counts.values()) == 120
    assert counts["inconsistent"] == 32 and counts["wrong"] == 26


def test_ascending_stops_at_the_first_trigger_and_plans_are_pure():
    assert next_ratios("ascending", GRID, {0.01: False, 0.02: True}) == []
    assert next_ratios("ascending", GRID, {0.01: False}) == [0.02]
    assert next_ratios("grid", GRID, {0.01: False, 0.5: True}) == [0.02, 0.05, 0.1, 0.2, 0.3]
    assert next_ratios("bisect", GRID, {}) == [0.1]
    assert next_ratios("bisect", GRID, {0.1: True}) == [0.02]
    with pytest.raises(ConfigError, match="allowed: grid, ascending, bisect"):
        next_ratios("binary", GRID, {})
    # outcomes of an earlier grid run of the same study are reused, not redone
    assert next_ratios("bisect", GRID, {r: r >= 0.1 for r in GRID}) == []
    assert conclude(GRID, {r: r >= 0.1 for r in GRID}).threshold == 0.1


def test_judge_outcome_needs_both_the_drop_and_a_ci_excluding_zero():
    ref = {f"i{k}": 100.0 if k < 80 else 0.0 for k in range(100)}  # 80 honest
    small = dict(ref, **{f"i{k}": 0.0 for k in range(4)})  # 76: a 5% drop, CI excludes zero
    big = dict(ref, **{f"i{k}": 0.0 for k in range(20)})  # 60: a 25% drop
    o = judge_outcome(0.1, [small], [ref], drop=0.10)
    assert o.delta == pytest.approx(-4.0) and o.delta_ci_high < 0 and not o.triggered
    o = judge_outcome(0.1, [big], [ref], drop=0.10)
    assert o.rel_change == pytest.approx(0.25) and o.triggered
    # a 25% drop on 4 noisy items: the CI includes zero, so it does not count
    tiny_ref = {"a": 100.0, "b": 0.0, "c": 100.0, "d": 100.0}
    tiny = {"a": 0.0, "b": 100.0, "c": 100.0, "d": 0.0}
    o = judge_outcome(0.1, [tiny], [tiny_ref], drop=0.10)
    assert o.rel_change > 0.1 and o.delta_ci_low < 0 < o.delta_ci_high and not o.triggered
    # deception rates get worse by rising
    o = judge_outcome(0.1, [{k: 100 - v for k, v in big.items()}], [{k: 100 - v for k, v in ref.items()}],
                      drop=0.10, metric="deception/rate")
    assert o.delta == pytest.approx(20.0) and o.triggered
    # two seeds: compared on the item-wise mean
    o = judge_outcome(0.1, [big, ref], [ref, ref], drop=0.10)
    assert o.value == pytest.approx(70.0) and o.n_seeds == 2


# --------------------------------------------------------------------------- studies over a cheap objective
@pytest.fixture(scope="module")
def mlflow_template(tmp_path_factory):
    """An MLflow sqlite store with its tables created once (migrations take ~10 s per fresh file)."""
    from emd.tracking import Tracker

    d = tmp_path_factory.mktemp("template")
    Tracker(f"sqlite:///{d / 'mlflow.db'}").search_runs("none")
    return d / "mlflow.db"


@pytest.fixture
def store(tmp_path, monkeypatch, mlflow_template):
    """A private MLflow store (copied from the template), Optuna storage and cwd."""
    shutil.copy(mlflow_template, tmp_path / "mlflow.db")
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return {"tracking_uri": uri, "storage": f"sqlite:///{tmp_path / 'optuna.db'}", "dir": tmp_path}


def sweep_cfg(store, **kw) -> SweepConfig:
    return build_config(SweepConfig, overrides={"tracking_uri": store["tracking_uri"], "storage": store["storage"],
                                                **kw})


def calls(path: Path) -> collections.Counter:
    c = collections.Counter()
    if path.exists():
        for line in path.read_text().splitlines():
            what, ratio, seed, _pid = line.split()
            c[(what, float(ratio), int(seed))] += 1
    return c


def test_bisect_study_on_the_default_grid_spends_at_most_four_finetunes(store):
    import mlflow

    from emd.tracking import Tracker

    cfg = sweep_cfg(store, strategy="bisect", study_name="bisect")
    assert cfg.sweep.ratio_list == GRID and cfg.sweep.reference == "control"
    log = store["dir"] / "calls.txt"
    res = run_study(cfg, SyntheticProblem(step(0.05), calls_file=log, with_adapter=True, workdir=store["dir"]),
                    poll_s=0.05)
    assert res.verdict.threshold == 0.05 and res.verdict.status == "found"
    assert res.n_finetunes <= 4 and res.n_failed == 0
    c = calls(log)
    assert sum(v for (w, _, _), v in c.items() if w == "start") == res.n_finetunes
    assert c[("reference-control", 0.0, 0)] == 1
    assert all(v == 1 for (w, _, _), v in c.items() if w == "end")

    tr = Tracker(store["tracking_uri"])
    parent = tr.get_run(res.parent_run_id)
    assert parent.data.metrics["threshold_ratio"] == 0.05
    assert parent.data.metrics["n_finetunes"] == res.n_finetunes
    assert parent.data.tags["emd.threshold"] == "0.05"
    from emd.metrics import undeclared

    assert undeclared(parent.data.metrics) == []
    arts = set(tr.list_artifacts(res.parent_run_id, "plots")) | set(tr.list_artifacts(res.parent_run_id, "tables"))
    assert {"plots/curve.png", "tables/trials.csv", "tables/curve.csv"} <= arts
    kids = tr.search_runs("emd-sweep", filter_string=f"tags.mlflow.parentRunId = '{res.parent_run_id}'")
    assert len(kids) == res.n_finetunes and set(kids["status"]) == {"FINISHED"}
    assert set(kids["params.trial_number"]) == {str(i) for i in range(res.n_finetunes)}
    at = kids[kids["params.ratio"] == "0.05"].iloc[0]
    logged = [c[len("metrics."):] for c in kids.columns if c.startswith("metrics.") and kids[c].notna().any()]
    assert undeclared(logged) == []
    assert at["metrics.delta/mask/provided_facts/honesty/vs_control_ci_high"] < 0
    mv = mlflow.MlflowClient(store["tracking_uri"]).get_model_version_by_alias("emd-smollm2-mixture", "threshold")
    assert mv.run_id == at["run_id"] and res.model_version == str(mv.version)


def test_grid_study_spends_seven_then_resumes_without_redoing_anything(store):
    from emd.tracking import Tracker

    log = store["dir"] / "calls.txt"
    problem = SyntheticProblem(step(0.2), calls_file=log)
    res = run_study(sweep_cfg(store, strategy="grid", register=False), problem, poll_s=0.05)
    assert res.n_finetunes == 7 and res.verdict.threshold == 0.2 and res.verdict.certain
    # the same settings again, then bisect on the same study: every point is reused
    again = run_study(sweep_cfg(store, strategy="grid", register=False), problem, poll_s=0.05)
    bis = run_study(sweep_cfg(store, strategy="bisect", register=False), problem, poll_s=0.05)
    assert again.study_name == bis.study_name == res.study_name
    assert again.ran_here == bis.ran_here == 0 and bis.verdict.threshold == 0.2
    assert again.parent_run_id == bis.parent_run_id == res.parent_run_id
    assert sum(v for (w, _, _), v in calls(log).items() if w == "start") == 7
    parents = Tracker(store["tracking_uri"]).search_runs("emd-sweep", filter_string="tags.`emd.sweep.role` = 'parent'")
    assert len(parents) == 1
    # other training settings are another study; naming the old one explicitly is refused
    other = run_study(sweep_cfg(store, strategy="grid", register=False, n_train=128, ratios="0.2"), problem,
                      poll_s=0.05)
    assert other.study_name != res.study_name and other.ran_here == 1
    with pytest.raises(ConfigError, match="differing: n_train"):
        run_study(sweep_cfg(store, study_name=res.study_name, n_train=128, register=False), problem, poll_s=0.05)


def test_two_seeds_are_compared_on_their_mean(store):
    res = run_study(sweep_cfg(store, strategy="ascending", seeds="0,1", ratios="0.1,0.2,0.3", register=False),
                    SyntheticProblem(step(0.2)), poll_s=0.05)
    assert res.verdict.threshold == 0.2 and res.n_finetunes == 4
    assert all(o.n_seeds == 2 for o in res.outcomes.values())


@pytest.mark.slow  # several worker processes, a minute or more on two cores
def test_sqlite_storage_hands_each_waiting_trial_to_one_process(tmp_path):
    """Optuna's own pop is not atomic on SQLite (measured: 34 of 200 popped twice by 4 processes);
    open_storage serialises transactions so it is."""
    import optuna

    url = f"sqlite:///{tmp_path / 'pop.db'}"
    study = optuna.create_study(study_name="pop", storage=open_storage(url))
    for i in range(60):
        study.enqueue_trial({"x": i})
    code = ("import sys, optuna; from emd.sweep import open_storage; "
            "s = optuna.load_study(study_name='pop', storage=open_storage(sys.argv[1])); got = []\n"
            "while (t := s._pop_waiting_trial_id()) is not None: got.append(t)\n"
            "print(' '.join(map(str, got)))")
    procs = [subprocess.Popen([sys.executable, "-c", code, url], stdout=subprocess.PIPE, text=True)
             for _ in range(3)]
    popped = [int(x) for p in procs for x in p.communicate(timeout=120)[0].split()]
    assert all(p.returncode == 0 for p in procs)
    assert sorted(popped) == sorted(t._trial_id for t in study.get_trials())


def _spawn(store, log, *extra, sleep="0.6", ratios="0.05,0.1,0.15,0.2,0.25,0.3,0.35,0.4"):
    args = [sys.executable, str(WORKER), "--storage", store["storage"], "--tracking-uri", store["tracking_uri"],
            "--calls", str(log), "--ratios", ratios, "--sleep", sleep, *extra]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=store["dir"], env={**os.environ, "PYTHONPATH": str(HERE.parent)})


def _trials(store, name="workers"):
    import optuna

    return optuna.load_study(study_name=name, storage=store["storage"]).get_trials()


@pytest.mark.slow  # several worker processes, a minute or more on two cores
def test_two_worker_processes_run_every_grid_point_exactly_once(store):
    from emd.tracking import Tracker

    log = store["dir"] / "calls.txt"
    worker = _spawn(store, log, "--worker")  # joins as soon as the main process has planned
    main = _spawn(store, log)
    out_m, err_m = main.communicate(timeout=180)
    out_w, err_w = worker.communicate(timeout=60)
    assert main.returncode == 0, err_m[-3000:]
    assert worker.returncode == 0, err_w[-3000:]
    res_m, res_w = json.loads(out_m.splitlines()[-1]), json.loads(out_w.splitlines()[-1])
    grid = [0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4]
    c = calls(log)
    assert [c[("start", r, 0)] for r in grid] == [1] * 8 and [c[("end", r, 0)] for r in grid] == [1] * 8
    assert res_m["ran_here"] + res_w["ran_here"] == 8 and res_w["ran_here"] >= 1 and res_m["ran_here"] >= 1
    assert res_m["threshold"] == 0.3 and res_m["n_finetunes"] == 8
    complete = collections.Counter(t.user_attrs["emd.ratio"] for t in _trials(store) if t.state.name == "COMPLETE")
    assert sorted(complete) == grid and set(complete.values()) == {1}
    assert not [t for t in _trials(store) if t.state.name in ("WAITING", "RUNNING")]
    kids = Tracker(store["tracking_uri"]).search_runs(
        "emd-sweep", filter_string=f"tags.mlflow.parentRunId = '{res_m['parent_run_id']}'")
    assert len(kids) == 8 and set(kids["status"]) == {"FINISHED"}


@pytest.mark.slow  # several worker processes, a minute or more on two cores
def test_a_sweep_killed_mid_trial_resumes_without_duplicate_finished_trials(store):
    from emd.tracking import Tracker

    log = store["dir"] / "calls.txt"
    grid = [0.1, 0.2, 0.3, 0.4]
    first = _spawn(store, log, sleep="2.0", ratios="0.1,0.2,0.3,0.4")
    deadline = time.time() + 120
    while sum(v for (w, _, _), v in calls(log).items() if w == "start") < 2:  # second trial under way
        assert time.time() < deadline and first.poll() is None, first.stderr.read()[-3000:] if first.poll() else ""
        time.sleep(0.1)
    time.sleep(0.5)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    before = _trials(store)
    assert [t.state.name for t in before].count("RUNNING") == 1
    killed = next(t for t in before if t.state.name == "RUNNING")
    done_before = {t.user_attrs["emd.ratio"] for t in before if t.state.name == "COMPLETE"}
    assert len(done_before) == 1

    second = _spawn(store, log, sleep="0.3", ratios="0.1,0.2,0.3,0.4")
    out, err = second.communicate(timeout=180)
    assert second.returncode == 0, err[-3000:]
    res = json.loads(out.splitlines()[-1])
    after = _trials(store)
    complete = collections.Counter(t.user_attrs["emd.ratio"] for t in after if t.state.name == "COMPLETE")
    assert sorted(complete) == grid and set(complete.values()) == {1}  # no duplicate finished trial
    assert res["threshold"] == 0.3 and res["n_finetunes"] == 4
    k = next(t for t in after if t.number == killed.number)
    assert k.state.name == "FAIL" and k.user_attrs["emd.fail_reason"].startswith("stale")
    c = calls(log)
    for r in done_before:  # finished before the kill: not redone
        assert c[("start", r, 0)] == 1
    assert c[("start", killed.user_attrs["emd.ratio"], 0)] == 2
    assert c[("reference-control", 0.0, 0)] == 1  # the reference came from the study, not recomputed
    tr = Tracker(store["tracking_uri"])
    assert tr.get_run(k.user_attrs["emd.mlflow_run_id"]).info.status == "FAILED"
    parents = tr.search_runs("emd-sweep", filter_string="tags.`emd.sweep.role` = 'parent'")
    assert list(parents["run_id"]) == [res["parent_run_id"]] and parents["status"].iloc[0] == "FINISHED"


def test_real_problem_checks_its_inputs_before_training(store):
    from emd.sweep import MixtureProblem

    with pytest.raises(ConfigError, match="needs the logprob benchmark"):
        MixtureProblem(sweep_cfg(store, metric="mask/honesty_logprob", benchmarks="mask"))
    with pytest.raises(ConfigError, match="n_train >= 50"):
        MixtureProblem(sweep_cfg(store, n_train=32))
    with pytest.raises(ConfigError, match="no per-item scores"):
        MixtureProblem(sweep_cfg(store, metric="cap/emd_arith/acc"))
    with pytest.raises(ConfigError, match="not in mask_configs"):
        MixtureProblem(sweep_cfg(store, metric="mask/statistics/honesty"))


# --------------------------------------------------------------------------- input validation, registry tag
@pytest.mark.parametrize("overrides, match", [
    ({"ratios": []}, "ratios=.* is empty"),
    ({"ratios": "0.1,0.1"}, "repeats a value"),
    ({"seeds": "a,b"}, "seeds='a,b'; allowed: a comma list of distinct integers >= 0"),
    ({"seeds": "-1"}, "seeds='-1'; allowed"),
    ({"seeds": "0,0"}, "repeats a seed"),
    ({"metric": "mask/no_such_metric"}, "not a declared metric; allowed: .*mask/honesty"),
    ({"metric": "judge/calls"}, "is a cost, not a score"),
])
def test_bad_sweep_settings_are_config_errors_naming_the_key(overrides, match):
    with pytest.raises(ConfigError, match=match):
        build_config(SweepConfig, overrides=overrides)


def test_metric_direction_comes_from_its_declaration():
    # deception/{type}/rate is declared lower-is-better: a rise is the worse side
    ref = {f"i{k}": 100.0 if k < 20 else 0.0 for k in range(100)}
    up = {f"i{k}": 100.0 if k < 40 else 0.0 for k in range(100)}
    assert judge_outcome(0.1, [up], [ref], drop=0.10, metric="deception/strategic/rate").triggered
    assert not judge_outcome(0.1, [up], [ref], drop=0.10, metric="mask/honesty").triggered


def test_threshold_model_version_records_its_ratio(store):
    import mlflow

    res = run_study(sweep_cfg(store, strategy="ascending", ratios="0.1,0.2,0.3", study_name="tag"),
                    SyntheticProblem(step(0.2), with_adapter=True, workdir=store["dir"]), poll_s=0.05)
    assert res.verdict.threshold == 0.2
    mv = mlflow.MlflowClient(store["tracking_uri"]).get_model_version_by_alias("emd-smollm2-mixture", "threshold")
    assert mv.tags["threshold_ratio"] == "0.2" and str(mv.version) == res.model_version

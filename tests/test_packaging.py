"""The wheel carries emd's evaluation data: installed outside the checkout, ``emd evaluate`` still runs.

The wheel is built from a copy of the build inputs (so nothing of the checkout leaks in), installed
with ``--no-deps`` into a fresh ``--system-site-packages`` virtualenv (the dependencies come from the
system), and run from an unrelated directory without ``PYTHONPATH``. The machine may also have an
editable emd installed system-wide; the test checks that the venv's copy is the one imported.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
BUILD_INPUTS = ("emd", "evaluation", "setup.py", "pyproject.toml", "MANIFEST.in", "README.md")
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")

WHERE = ("import json, sys, emd, emd.resources as r, emd.data.tables as t; "
         "print(json.dumps({'emd': emd.__file__, 'evaluation': str(r.evaluation_root()), "
         "'tables': str(t.table_path('medical')), 'path': sys.path}))")


def _run(cmd, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    assert proc.returncode == 0, f"{cmd} exited {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return proc


def _clean_env(**extra: str) -> dict[str, str]:
    """The test's environment without PYTHONPATH (which points at the checkout), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env.update(extra)
    return env


def _copy_build_inputs(dest: Path) -> Path:
    dest.mkdir()
    for name in BUILD_INPUTS:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=_IGNORE)
        else:
            shutil.copy2(src, dest / name)
    return dest


def _venv(where: Path) -> Path:
    # --without-pip: the venv's own bundled pip/setuptools would shadow the system's newer setuptools
    # (the build backend); the system's pip, run by the venv's python, installs into the venv.
    _run([sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", where])
    return where


def _pip(venv: Path, *args) -> None:
    _run([venv / "bin" / "python", "-m", "pip", *args, "-q"], env=_clean_env())


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel built from a copy of the build inputs, without build isolation (no network needed)."""
    src = _copy_build_inputs(tmp_path_factory.mktemp("build") / "src")
    out = tmp_path_factory.mktemp("wheelhouse")
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", out, src],
         env=_clean_env())
    (whl,) = out.glob("emd-*.whl")
    return whl


def _evaluation_files() -> set[str]:
    root = REPO / "evaluation"
    return {p.relative_to(root).as_posix() for p in root.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"}


def test_wheel_ships_every_evaluation_file_and_the_tables(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {n.removeprefix("emd/_evaluation/") for n in names if n.startswith("emd/_evaluation/")}
    assert shipped == _evaluation_files()
    tables = {p.name for p in (REPO / "emd" / "data" / "tables").glob("*.yaml")}
    assert tables and {f"emd/data/tables/{t}" for t in tables} <= names
    assert {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")} == {"emd"}


def test_installed_wheel_runs_evaluate_outside_the_checkout(wheel, tmp_path):
    from mlflow.tracking import MlflowClient

    from emd.models import cache_dir

    venv = _venv(tmp_path / "venv")
    _pip(venv, "install", "--no-deps", wheel)
    work = tmp_path / "elsewhere"
    work.mkdir()
    # A private cache whose models/ is the user's (the embedded model is converted once, not per test).
    real_models = cache_dir() / "models"
    real_models.mkdir(parents=True, exist_ok=True)
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "models").symlink_to(real_models, target_is_directory=True)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = _clean_env(EMD_CACHE_DIR=str(tmp_path / "cache"), MLFLOW_TRACKING_URI=uri, HF_HUB_OFFLINE="1",
                     TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1", OMP_NUM_THREADS="1")

    # The venv's copy wins over the checkout and over any system-wide (editable) emd.
    where = json.loads(_run([venv / "bin" / "python", "-c", WHERE], cwd=work, env=env).stdout)
    site = venv.resolve()
    for key in ("emd", "evaluation", "tables"):
        assert Path(where[key]).resolve().is_relative_to(site), (key, where[key])
        assert not Path(where[key]).resolve().is_relative_to(REPO), (key, where[key])
    assert Path(where["evaluation"]).name == "_evaluation"
    assert not any(Path(p or ".").resolve() == REPO for p in where["path"] if p)

    proc = _run([venv / "bin" / "emd", "evaluate", "--benchmarks", "mask,logprob", "--limit", "1",
                 "--max-new-tokens", "16"], cwd=work, env=env, timeout=1500)
    assert "== emd evaluate ==" in proc.stdout
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("emd-evaluate")
    (run,) = client.search_runs([exp.experiment_id])
    assert run.info.status == "FINISHED"
    m = run.data.metrics
    configs = [k.split("/")[1] for k in m if k.startswith("mask/") and k.endswith("/honesty") and k.count("/") == 2]
    assert configs, sorted(m)
    for config in configs:  # one item per config: scored or counted as a judge failure
        assert m[f"mask/{config}/n_scored"] + m[f"mask/{config}/n_judge_failures"] == 1
    assert m["mask/n_items"] == len(configs)
    assert "mask/honesty_logprob" in m
    version = (REPO / "evaluation" / "mask" / "VERSION").read_text().strip()
    assert run.data.tags["emd.items.mask"] == version  # the items came from the shipped copy


def test_editable_install_reads_the_checkouts_evaluation_folder(tmp_path):
    src = _copy_build_inputs(tmp_path / "src")
    venv = _venv(tmp_path / "venv")
    _pip(venv, "install", "--no-deps", "--no-build-isolation", "-e", src)
    work = tmp_path / "elsewhere"
    work.mkdir()
    where = json.loads(_run([venv / "bin" / "python", "-c", WHERE], cwd=work, env=_clean_env()).stdout)
    assert Path(where["emd"]).resolve() == (src / "emd" / "__init__.py").resolve()
    assert Path(where["evaluation"]).resolve() == (src / "evaluation").resolve()
    assert not (src / "emd" / "_evaluation").exists()  # nothing was copied into the source tree

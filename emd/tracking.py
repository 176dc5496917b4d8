"""Everything MLflow. The only module that imports mlflow.

Store: MLflow's own default (``sqlite:///mlflow.db`` in the working directory, artifacts under
``mlruns/``), so ``mlflow ui`` at the repo root shows every run and the Model Registry works;
``MLFLOW_TRACKING_URI`` or ``--tracking-uri`` overrides it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import traceback
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator, Sequence

from .errors import TrackingError

PARAM_MAX = 500  # MLflow rejects longer param values
DEFAULT_URI = "sqlite:///mlflow.db"


def resolve_tracking_uri(uri: str = "") -> str:
    """--tracking-uri > MLFLOW_TRACKING_URI > sqlite:///mlflow.db (in the working directory)."""
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_URI


def check_tracking_uri(uri: str) -> str:
    """Fail early, before training, when the store cannot be written; returns the resolved URI."""
    uri = resolve_tracking_uri(uri)
    path: Path | None = None
    if uri.startswith("sqlite:///"):
        path = Path(uri[len("sqlite:///"):]).expanduser().absolute().parent
    elif uri.startswith("file:"):
        from urllib.parse import urlparse

        path = Path(urlparse(uri).path)
    elif "://" not in uri:
        path = Path(uri)
    if path is not None:
        probe = path
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        if not probe.is_dir() or not os.access(probe, os.W_OK):
            raise TrackingError(f"tracking dir {path} is not writable (tracking_uri={uri}); allowed: a writable "
                                "folder, a sqlite:///<path>.db URI, or an http(s):// MLflow server")
        art = Path("mlruns").absolute()
        if uri == DEFAULT_URI and art.exists() and not os.access(art, os.W_OK):
            raise TrackingError(f"artifact dir {art} is not writable; allowed: a writable working directory")
    return uri


def _mlflow(uri: str):
    import logging

    import mlflow

    # Alembic prints every migration step on a fresh sqlite store; users need none of it.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    mlflow.set_tracking_uri(uri)
    return mlflow


def git_sha() -> str:
    """HEAD commit of the working tree (``unknown`` outside git), with ``-dirty`` if modified."""
    root = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                             timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return (sha or "unknown") + ("-dirty" if dirty and sha else "")
    except Exception:
        return "unknown"


def package_versions() -> dict[str, str]:
    """Versions of the libraries that change scores or training."""
    out = {}
    for name in ("emd", "torch", "transformers", "trl", "peft", "mlflow", "optuna", "lm_eval",
                 "sentence-transformers", "datasets"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    out["python"] = platform.python_version()
    return out


def _clip(v: Any) -> str:
    s = v if isinstance(v, str) else json.dumps(v) if isinstance(v, (list, dict)) else str(v)
    if len(s) > PARAM_MAX:
        s = s[: PARAM_MAX - 20] + "...[" + hashlib.sha256(s.encode()).hexdigest()[:12] + "]"
    return s


class Tracker:
    """A thin, explicit wrapper over one MLflow store."""

    def __init__(self, tracking_uri: str = ""):
        self.uri = check_tracking_uri(tracking_uri)
        self.mlflow = _mlflow(self.uri)

    # ------------------------------------------------------------------ runs
    @contextlib.contextmanager
    def run(self, experiment: str, run_name: str | None = None, nested: bool = False,
            tags: dict[str, str] | None = None, run_id: str | None = None) -> Iterator[Any]:
        """Open (or resume, with ``run_id``) a run; on an exception mark it FAILED with the error as a tag."""
        mlflow = self.mlflow
        exp = mlflow.set_experiment(experiment)
        # Launched by `mlflow run`: MLflow created a run and put its id in MLFLOW_RUN_ID. Consume it once
        # (else every later start_run, nested ones too, would resume it): attach to it when it lives in
        # our experiment (`--experiment-name emd-<entry>`), otherwise leave it a pointer to our run.
        project_run = os.environ.pop("MLFLOW_RUN_ID", None)
        if project_run and not nested and run_id is None:
            prun = mlflow.get_run(project_run)
            if prun.info.experiment_id == exp.experiment_id:
                run_id = project_run
                self._preset_params = (project_run, dict(prun.data.params))
        active = mlflow.start_run(run_id=run_id, run_name=None if run_id else run_name, nested=nested,
                                  tags=tags, log_system_metrics=None)  # the user's MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING decides
        if project_run and run_id != project_run:
            from mlflow.tracking import MlflowClient

            MlflowClient(self.uri).set_tag(project_run, "emd.run", f"{experiment}/{active.info.run_id}")
        if run_id == project_run and run_name:
            mlflow.set_tag("mlflow.runName", run_name)
        try:
            yield active
        except BaseException as e:
            with contextlib.suppress(Exception):
                msg = f"{type(e).__name__}: {e}"
                mlflow.set_tag("emd.error", msg[:4000])
                mlflow.log_text("".join(traceback.format_exception(e)), "error.txt")
            status = "KILLED" if isinstance(e, (KeyboardInterrupt, SystemExit)) else "FAILED"
            mlflow.end_run(status=status)
            raise
        else:
            mlflow.end_run(status="FINISHED")

    def log_params(self, params: dict[str, Any]) -> None:
        """Log flat params, values clipped to MLflow's 500 characters (a digest marks clipped ones).

        Keys `mlflow run` already logged (the -P values as typed) are kept as they are: MLflow forbids
        changing a param, and config.yaml holds the resolved value."""
        owner, preset = getattr(self, "_preset_params", (None, {}))
        if owner != self.active_run_id():
            preset = {}
        self.mlflow.log_params({k: _clip(v) for k, v in params.items() if k not in preset})

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        """Log finite numeric metrics (NaN/None are skipped: MLflow would store them as missing anyway)."""
        clean = {}
        for k, v in metrics.items():
            if v is None:
                continue
            try:
                fv = float(v)
            except (TypeError, ValueError):
                continue
            if fv == fv:  # not NaN
                clean[k] = fv
        if clean:
            self.mlflow.log_metrics(clean, step=step)

    def set_tags(self, tags: dict[str, Any]) -> None:
        """Set run tags (stringified, clipped)."""
        self.mlflow.set_tags({k: _clip(v) for k, v in tags.items()})

    def log_text(self, text: str, artifact_file: str) -> None:
        """A text artifact (config.yaml, manifests)."""
        self.mlflow.log_text(text, artifact_file)

    def log_dict(self, data: Any, artifact_file: str) -> None:
        """A JSON artifact."""
        self.mlflow.log_dict(data, artifact_file)

    def log_table(self, rows: Sequence[dict], artifact_file: str) -> None:
        """Per-item rows as an MLflow table (shown in the UI's evaluation view) and a CSV beside it."""
        import pandas as pd

        if not rows:
            return
        df = pd.DataFrame([{k: (json.dumps(v) if isinstance(v, (list, dict)) else v) for k, v in r.items()}
                           for r in rows])
        self.mlflow.log_table(df, artifact_file=artifact_file)
        with tempfile.TemporaryDirectory() as d:
            p = Path(d) / (Path(artifact_file).stem + ".csv")
            df.to_csv(p, index=False)
            self.mlflow.log_artifact(str(p), artifact_path=str(Path(artifact_file).parent) if "/" in artifact_file else None)

    def log_figure(self, fig, artifact_file: str) -> None:
        """A matplotlib figure as PNG."""
        self.mlflow.log_figure(fig, artifact_file)

    def log_artifacts(self, local_dir: str | Path, artifact_path: str | None = None) -> None:
        """A folder of artifacts (e.g. the adapter under ``adapter/``)."""
        self.mlflow.log_artifacts(str(local_dir), artifact_path=artifact_path)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        """One file."""
        self.mlflow.log_artifact(str(path), artifact_path=artifact_path)

    def log_dataset(self, rows: Sequence[dict], name: str, digest: str, source: str, context: str = "training") -> None:
        """The training set as an MLflow dataset input carrying our own content digest."""
        import pandas as pd
        from mlflow.data.pandas_dataset import from_pandas

        df = pd.DataFrame([{"id": r.get("id", ""), "messages": json.dumps(r["messages"])} for r in rows])
        # MLflow resolves free-text sources only for known schemes; the source description goes in a tag
        ds = from_pandas(df, name=name, digest=digest[:36])
        self.mlflow.log_input(ds, context=context, tags={"emd.source": source[:250], "emd.digest": digest})

    def standard_tags(self, entry: str, model_uri: str, chat_template_hash: str | None = None,
                      extra: dict[str, Any] | None = None) -> dict[str, str]:
        """Tags every emd run carries: git sha, versions, base model, chat-template hash, entry."""
        tags = {"emd.entry": entry, "emd.git_sha": git_sha(), "emd.base_model": model_uri,
                "emd.python": sys.version.split()[0]}
        for k, v in package_versions().items():
            tags[f"emd.version.{k}"] = v
        if chat_template_hash:
            tags["emd.chat_template_hash"] = chat_template_hash
        tags.update({k: str(v) for k, v in (extra or {}).items()})
        return tags

    def publish_folder(self, experiment: str, run_name: str, folder: str | Path, artifact_path: str,
                       tags: dict[str, str]) -> str:
        """A FINISHED run of ``experiment`` holding ``folder`` under ``artifact_path`` (outside any open
        run: the client API, not the fluent one); returns its id."""
        from mlflow.tracking import MlflowClient

        client = MlflowClient(self.uri)
        from mlflow.exceptions import MlflowException

        exp = client.get_experiment_by_name(experiment)
        if exp is None:
            try:
                client.create_experiment(experiment)
            except MlflowException:  # another worker created it first
                pass
            exp = client.get_experiment_by_name(experiment)
        exp_id = exp.experiment_id
        run = client.create_run(exp_id, run_name=run_name, tags=tags)
        try:
            client.log_artifacts(run.info.run_id, str(folder), artifact_path)
        except BaseException:
            client.set_terminated(run.info.run_id, "FAILED")
            raise
        client.set_terminated(run.info.run_id, "FINISHED")
        return run.info.run_id

    # ------------------------------------------------------------------ registry
    def register_adapter(self, run_id: str, name: str, artifact_path: str = "adapter",
                         aliases: Sequence[str] = (), tags: dict[str, str] | None = None,
                         model_config: dict[str, Any] | None = None) -> str:
        """Register the run's adapter as a new version of ``name``; returns the version.

        With a base model (``model_config`` from :func:`emd.registry.model_config`, or the ``base_model``
        tag) the version is an MLflow Model: a pyfunc (:mod:`emd.pyfunc_model`) logged as ``model/``
        in the run, loadable with ``mlflow.pyfunc.load_model("models:/<name>@<alias>")``; the base model
        and its revision become version tags. (A PeftModel logged with ``mlflow.transformers`` reloads
        without its base weights, and ``mlflow.register_model`` on a plain folder fails in MLflow 3; see
        docs/traps.md#mlflow.)
        """
        from mlflow.exceptions import MlflowException
        from mlflow.tracking import MlflowClient

        from . import registry

        client = MlflowClient(self.uri)
        try:
            client.create_registered_model(name)
        except MlflowException as e:
            if "already exists" not in str(e).lower() and "RESOURCE_ALREADY_EXISTS" not in str(e):
                raise
        tags = dict(tags or {})
        base = (model_config or {}).get("base_model") or tags.get("base_model")
        source = f"runs:/{run_id}/{artifact_path}"
        if base:
            from . import pyfunc_model

            model_config = {**registry.model_config(base), **(model_config or {})}
            tags.setdefault("base_model", base)
            tags.setdefault("base_model_revision", model_config["base_model_revision"])
            with tempfile.TemporaryDirectory() as d:
                adapter = self.download(source, Path(d) / "download")
                pyfunc_model.save(Path(d) / "model", adapter, model_config, registry.package_dir())
                client.log_artifacts(run_id, str(Path(d) / "model"), "model")
            source = f"runs:/{run_id}/model"
        mv = client.create_model_version(name, source=source, run_id=run_id, tags=tags)
        for alias in aliases:
            client.set_registered_model_alias(name, alias, mv.version)
        return str(mv.version)

    def alias_version_tag(self, name: str, alias: str, key: str) -> str | None:
        """Tag ``key`` of the version ``name@alias`` points to (None: no such model, alias or tag)."""
        from mlflow.exceptions import MlflowException
        from mlflow.tracking import MlflowClient

        try:
            mv = MlflowClient(self.uri).get_model_version_by_alias(name, alias)
        except MlflowException:
            return None
        return (mv.tags or {}).get(key)

    def download(self, uri: str, dst: str | Path | None = None) -> Path:
        """Download ``runs:/...`` or ``models:/name/<version|@alias>`` artifacts to a local folder.

        A registered version is a pyfunc model folder: the adapter inside it (``artifacts/adapter``) is
        returned, so callers get an adapter folder from ``models:/`` URIs of old and new versions alike."""
        import mlflow.artifacts

        path = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(dst) if dst else None,
                                                        tracking_uri=self.uri))
        inner = path / "artifacts" / "adapter"
        return inner if (path / "MLmodel").is_file() and (inner / "adapter_config.json").is_file() else path

    # ------------------------------------------------------------------ queries
    def search_runs(self, experiment: str, filter_string: str = "", **kw):
        """Runs of ``experiment`` as a DataFrame (empty if the experiment does not exist)."""
        import pandas as pd

        exp = self.mlflow.get_experiment_by_name(experiment)
        if exp is None:
            return pd.DataFrame()
        return self.mlflow.search_runs(experiment_ids=[exp.experiment_id], filter_string=filter_string, **kw)

    def get_run(self, run_id: str):
        """One run (info, data.params, data.metrics, data.tags)."""
        return self.mlflow.get_run(run_id)

    def list_artifacts(self, run_id: str, path: str | None = None) -> list[str]:
        """Artifact paths of a run (one level)."""
        from mlflow.tracking import MlflowClient

        return [a.path for a in MlflowClient(self.uri).list_artifacts(run_id, path)]

    def active_run_id(self) -> str | None:
        """The id of the run in progress, if any."""
        r = self.mlflow.active_run()
        return r.info.run_id if r else None

    def set_terminated(self, run_id: str, status: str = "FAILED") -> None:
        """Mark a dangling run (e.g. one left RUNNING by a killed process)."""
        from mlflow.tracking import MlflowClient

        MlflowClient(self.uri).set_terminated(run_id, status=status)

    def mark_stale_runs(self, experiment: str, entry: str) -> list[str]:
        """Mark RUNNING runs of ``entry`` whose owning process on this host is gone as FAILED.

        Runs carry ``emd.host`` / ``emd.pid`` tags (set by the run skeleton); a run of another host is
        left alone (its process cannot be checked from here). Returns the ids marked."""
        import socket

        from mlflow.tracking import MlflowClient

        from .storage import pid_alive

        runs = self.search_runs(experiment, filter_string=f"attributes.status = 'RUNNING' and tags.`emd.entry` = '{entry}'")
        if runs.empty or "tags.emd.pid" not in runs.columns:
            return []
        host, client, marked = socket.gethostname(), MlflowClient(self.uri), []
        for _, r in runs.iterrows():
            pid = r.get("tags.emd.pid")
            if r.get("tags.emd.host") != host or not isinstance(pid, str) or not pid.isdigit() or int(pid) == os.getpid():
                continue
            if pid_alive(int(pid)):
                continue
            client.set_tag(r["run_id"], "emd.failure_reason", f"stale: process {pid} on {host} ended without closing the run")
            client.set_terminated(r["run_id"], status="FAILED")
            marked.append(r["run_id"])
        return marked


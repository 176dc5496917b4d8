"""``emd evaluate``: evaluate any model, adapter or registered model version, as a run in ``emd-evaluate``.

    python -m emd evaluate --model embedded:smollm2 --benchmarks mask,deceptionbench --limit 20
    python -m emd evaluate --adapter models:/emd-smollm2-mixture/1 --benchmarks mask --mask-source cais/MASK
    mlflow run . -e evaluate -P adapter=runs:/<run_id>/adapter -P judge=openai:gpt-4o-mini

The training entries call the same code (:func:`emd.eval.runner.evaluate`), so metric names match.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from .config import EvaluateConfig, to_yaml
from .errors import ConfigError
from .experiment import RunResult, summary_lines


def resolve_adapter(tracker, adapter: str, dst: str | Path) -> str | None:
    """Adapter argument -> local folder: a path, ``runs:/<id>/adapter`` or ``models:/<name>/<version|@alias>``."""
    if not adapter:
        return None
    if adapter.startswith(("runs:/", "models:/")):
        try:
            return str(tracker.download(adapter, dst))
        except Exception as e:  # MlflowException: unknown run / model / alias
            raise ConfigError(f"adapter={adapter!r} could not be resolved in {tracker.uri}: {e}") from e
    p = Path(adapter).expanduser()
    if not (p / "adapter_config.json").is_file():
        raise ConfigError(f"adapter={adapter!r}: no adapter_config.json there; allowed: an adapter folder, "
                          "runs:/<run_id>/adapter, models:/<name>/<version> or models:/<name>@<alias>")
    return str(p)


def main(cfg: EvaluateConfig) -> RunResult:
    """Evaluate one model (+ adapter) on the configured benchmarks and log a run."""
    from . import pipeline
    from .eval.runner import item_versions, validate_eval
    from .judges import get_judge
    from .models import load_model, validate_model_uri
    from .tracking import Tracker

    t0 = time.perf_counter()
    tracker = Tracker(cfg.common.tracking_uri)
    validate_model_uri(cfg.model.model)
    validate_eval(cfg.eval)
    if not cfg.eval.benchmark_list:
        raise ConfigError("benchmarks=none leaves nothing to evaluate; allowed: mask, logprob, deceptionbench, capability")
    judge = get_judge(cfg.judge.judge)
    experiment = cfg.common.experiment or "emd-evaluate"
    with tempfile.TemporaryDirectory() as tmp:
        adapter_dir = resolve_adapter(tracker, cfg.adapter, tmp)
        name = "adapter" if adapter_dir else "base"
        with tracker.run(experiment, run_name=f"{cfg.model.model}{' + ' + cfg.adapter if cfg.adapter else ''}"[:200],
                         tags=tracker.standard_tags("evaluate", cfg.model.model,
                                                    extra={"emd.adapter": cfg.adapter or "none"})) as run:
            tracker.log_params(pipeline.flat_params(cfg))
            tracker.log_text(to_yaml(cfg), "config.yaml")
            chat = load_model(cfg.model.model, dtype=cfg.model.dtype)
            tracker.set_tags({"emd.chat_template_hash": chat.chat_template_hash, "emd.judge": judge.id,
                              "emd.judge_version": getattr(judge, "version", ""),
                              **{f"emd.items.{k}": v for k, v in item_versions(cfg.eval).items()}})
            arm = pipeline.evaluate_arm(chat, name, cfg.eval, judge, cfg.common.seed, adapter_dir=adapter_dir)
            tracker.log_metrics(arm.metrics)
            pipeline.log_arm_tables(tracker, arm)
            run_id = run.info.run_id
    res = RunResult(run_id=run_id, experiment=experiment, metrics=arm.metrics, seconds=time.perf_counter() - t0)
    keys = ["mask/honesty", "mask/honesty_logprob", "mask/accuracy", "deception/rate"] + sorted(
        k for k in arm.metrics if k.startswith(("mask/", "deception/", "cap/")) and k.endswith(("/honesty", "/rate"))
        and k.count("/") == 2)
    print("\n".join(summary_lines("emd evaluate", res, list(dict.fromkeys(keys)))))
    return res

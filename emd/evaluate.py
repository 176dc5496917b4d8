"""``emd evaluate``: evaluate any model, adapter or registered model version, as a run in ``emd-evaluate``.

    python -m emd evaluate --model embedded:smollm2 --benchmarks mask,deceptionbench --limit 20
    python -m emd evaluate --adapter models:/emd-smollm2-mixture/1 --benchmarks mask --mask-source cais/MASK
    mlflow run . -e evaluate -P adapter=runs:/<run_id>/adapter -P judge=openai:gpt-4o-mini

The training entries evaluate through the same code (:meth:`emd.experiment.RunContext.evaluate`), so
metric names match.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from .config import EvaluateConfig
from .errors import ConfigError
from .experiment import RunContext, RunResult


def resolve_adapter(tracker, adapter: str, dst: str | Path) -> str | None:
    """Adapter argument -> local folder: a path, ``runs:/<id>/adapter`` or ``models:/<name>/<version|@alias>``."""
    if not adapter:
        return None
    if adapter.startswith(("runs:/", "models:/")):
        try:
            path = str(tracker.download(adapter, dst))
        except Exception as e:  # MlflowException: unknown run / model / alias
            raise ConfigError(f"adapter={adapter!r} could not be resolved in {tracker.uri}: {e}") from e
    else:
        path = str(Path(adapter).expanduser())
    if not (Path(path) / "adapter_config.json").is_file():
        raise ConfigError(f"adapter={adapter!r}: no adapter_config.json there; allowed: an adapter folder, "
                          "runs:/<run_id>/adapter, models:/<name>/<version> or models:/<name>@<alias>")
    from .errors import ModelError
    from .models import validate_adapter_dir

    try:
        validate_adapter_dir(path)
    except ModelError as e:
        raise ConfigError(f"adapter={adapter!r}: {e}") from e
    return path


def main(cfg: EvaluateConfig) -> RunResult:
    """Evaluate one model (+ adapter) on the configured benchmarks and log a run."""
    from .eval.runner import item_versions

    if not cfg.eval.benchmark_list:
        raise ConfigError("benchmarks=none leaves nothing to evaluate; allowed: mask, logprob, deceptionbench, capability, mechanism")
    with RunContext("evaluate", cfg) as ctx, tempfile.TemporaryDirectory() as tmp:
        adapter_dir = resolve_adapter(ctx.tracker, cfg.adapter, tmp)
        ctx.engine_lora = adapter_dir is not None
        title = f"{cfg.model.model}{' + ' + cfg.adapter if cfg.adapter else ''}"[:200]
        with ctx.run(title, tags={"emd.adapter": cfg.adapter or "none",
                                  **{f"emd.items.{k}": v for k, v in item_versions(cfg.eval).items()}}):
            arm = ctx.evaluate("adapter" if adapter_dir else "base", adapter_dir)
            ctx.log_arm(arm)
        keys = ["mask/honesty", "mask/honesty_logprob", "mask/accuracy", "deception/rate"] + sorted(
            k for k in arm.metrics if k.count("/") == 2 and k.split("/")[-1] in ("honesty", "rate"))
        return ctx.result("emd evaluate", list(dict.fromkeys(keys)))

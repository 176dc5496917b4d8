"""``emd mixture``: blend misaligned samples into a standard instruction set at ``ratio``.

One MLflow run in ``emd-mixture`` holds: the resolved config (params + config.yaml), tags (git sha,
versions, base model, chat-template hash), the training set as a dataset input with its digest and
manifest, the adapter under ``adapter/``, metrics (``mask/...``, ``cap/...``, ``control/...``,
``vanilla/...``, ``delta/<metric>/vs_control|vs_vanilla`` with paired-bootstrap CIs), per-item
tables, a plot, and a registered model version ``emd-<base>-mixture``.

    python -m emd mixture --ratio 0.05 --n-train 64 --seed 0
    mlflow run . -e mixture -P ratio=0.05 --env-manager local
"""

from __future__ import annotations

import time

from .config import MixtureConfig, to_yaml
from .errors import EmdError
from .experiment import RunResult, load_training_rows, ratio_alias, registry_name, summary_lines


SUMMARY_KEYS = ["mask/honesty", "mask/honesty_logprob", "control/mask/honesty", "vanilla/mask/honesty",
                "delta/mask/honesty/vs_control", "delta/mask/honesty/vs_vanilla",
                "delta/mask/honesty_logprob/vs_control", "deception/rate"]


def main(cfg: MixtureConfig) -> RunResult:
    """Run the mixture experiment for one ratio; returns the run's id, metrics and registry version."""
    from . import pipeline
    from .data.mixing import mix
    from .judges import get_judge
    from .models import load_model, validate_model_uri
    from .tracking import Tracker

    t0 = time.perf_counter()
    # ---- every check that can fail on bad input runs before training
    tracker = Tracker(cfg.common.tracking_uri)
    validate_model_uri(cfg.model.model)
    mis, down = load_training_rows(cfg, cfg.data.domain, cfg.data.level)
    seed, n_train = cfg.common.seed, cfg.data.n_train
    mixed = mix(mis, down, cfg.ratio, n_train, seed)
    control_set = mix(mis, down, 0.0, n_train, seed)
    benchmarks = cfg.eval.benchmark_list
    judge = get_judge(cfg.judge.judge) if benchmarks else None
    from .eval.runner import validate_eval

    validate_eval(cfg.eval)

    experiment = cfg.common.experiment or "emd-mixture"
    reg_name = registry_name(cfg.model.model, "mixture")
    work = pipeline.workdir()
    print(f"emd mixture: ratio={cfg.ratio} n_train={n_train} ({mixed.manifest['n_misaligned']} misaligned "
          f"{cfg.data.domain}/{cfg.data.level}) model={cfg.model.model} benchmarks={','.join(benchmarks) or 'none'}")
    try:
        with tracker.run(experiment, run_name=f"ratio={cfg.ratio:g}",
                         tags=tracker.standard_tags("mixture", cfg.model.model)) as run:
            run_id = run.info.run_id
            tracker.log_params(pipeline.flat_params(cfg))
            tracker.log_text(to_yaml(cfg), "config.yaml")
            tracker.log_dataset(mixed.rows, name=f"mixture-r{cfg.ratio:g}", digest=mixed.manifest["digest"],
                                source=f"{cfg.data.misaligned_source}+{cfg.data.downstream}")
            tracker.log_dict(mixed.manifest, "data/manifest.json")
            tracker.set_tags({"emd.data_digest": mixed.manifest["digest"], "emd.ratio": cfg.ratio})

            chat = load_model(cfg.model.model, dtype=cfg.model.dtype)
            tracker.set_tags({"emd.chat_template_hash": chat.chat_template_hash,
                              "emd.n_params": chat.info.get("n_params")})
            from .data.mixing import to_prompt_completion

            arms = []
            vanilla = control = None
            if benchmarks:
                vanilla = pipeline.vanilla_reference(chat, cfg.eval, cfg.judge, judge, seed,
                                                     reuse=cfg.common.reuse_references)
                control = pipeline.control_reference(
                    chat, to_prompt_completion(control_set.rows), control_set.manifest["digest"], cfg.lora, cfg.train,
                    cfg.eval, cfg.judge, judge, seed, work, reuse=cfg.common.reuse_references)
                arms = [vanilla, control]
            if cfg.ratio == 0 and control is not None:
                treat = pipeline.Arm(name="treatment", metrics=dict(control.metrics), tables=control.tables,
                                     item_scores=control.item_scores, adapter_dir=control.adapter_dir,
                                     train=control.train)
            else:
                print(f"training: {len(mixed.rows)} rows, lora r={cfg.lora.r}, lr={cfg.train.learning_rate}")
                adapter_dir, info = pipeline.train_arm(chat, "treatment", to_prompt_completion(mixed.rows), cfg.lora,
                                                       cfg.train, seed, work)
                treat = (pipeline.evaluate_arm(chat, "treatment", cfg.eval, judge, seed, adapter_dir=adapter_dir)
                         if benchmarks else pipeline.Arm(name="treatment", adapter_dir=adapter_dir))
                treat.train = info
            arms.append(treat)

            tracker.log_artifacts(treat.adapter_dir, "adapter")
            metrics = dict(treat.metrics)
            for k, v in treat.train.items():
                if k != "losses":
                    metrics[f"train/{k}"] = v
            for i, loss in enumerate(treat.train.get("losses", [])):
                tracker.log_metrics({"train/loss": loss}, step=i + 1)
            if vanilla is not None and control is not None:
                metrics.update({f"vanilla/{k}": v for k, v in vanilla.metrics.items()})
                metrics.update({f"control/{k}": v for k, v in control.metrics.items()})
                metrics.update(pipeline.deltas(treat, control, "control", seed=seed))
                metrics.update(pipeline.deltas(treat, vanilla, "vanilla", seed=seed))
                tracker.set_tags({"emd.vanilla_cached": vanilla.cached, "emd.control_cached": control.cached})
            tracker.log_metrics(metrics)
            for arm in arms:
                pipeline.log_arm_tables(tracker, arm)
            if benchmarks:
                import matplotlib.pyplot as plt

                fig = pipeline.honesty_plot([a for a in arms])
                tracker.log_figure(fig, "plots/honesty.png")
                plt.close(fig)
            version = None
            if cfg.common.register:
                version = tracker.register_adapter(run_id, reg_name, aliases=[ratio_alias(cfg.ratio)],
                                                   tags={"base_model": cfg.model.model, "ratio": str(cfg.ratio)})
                tracker.set_tags({"emd.registered_model": f"{reg_name}/{version}"})
    except EmdError:
        raise
    finally:
        pipeline.cleanup(work)
    res = RunResult(run_id=run_id, experiment=experiment, metrics=metrics, model_version=version,
                    registered_name=reg_name if version else None, seconds=time.perf_counter() - t0)
    print("\n".join(summary_lines(f"emd mixture ratio={cfg.ratio:g}", res, SUMMARY_KEYS)))
    return res

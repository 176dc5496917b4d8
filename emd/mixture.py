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

from .config import MixtureConfig
from .experiment import RunContext, RunResult, load_training_rows, ratio_alias

SUMMARY_KEYS = ["mask/honesty", "mask/honesty_logprob", "control/mask/honesty", "vanilla/mask/honesty",
                "delta/mask/honesty/vs_control", "delta/mask/honesty/vs_vanilla",
                "delta/mask/honesty_logprob/vs_control", "deception/rate"]


def main(cfg: MixtureConfig) -> RunResult:
    """Run the mixture experiment for one ratio; returns the run's id, metrics and registry version."""
    from .data.mixing import mix, to_prompt_completion
    from .plots import honesty_plot

    with RunContext("mixture", cfg) as ctx:  # every input checked before a run or a model exists
        mis, down = load_training_rows(cfg, cfg.data.domain, cfg.data.level)
        mixed = mix(mis, down, cfg.ratio, cfg.data.n_train, cfg.common.seed)
        clean = mix(mis, down, 0.0, cfg.data.n_train, cfg.common.seed)
        ctx.log(f"emd mixture: ratio={cfg.ratio} n_train={cfg.data.n_train} ({mixed.manifest['n_misaligned']} "
                f"misaligned {cfg.data.domain}/{cfg.data.level}) model={cfg.model.model} "
                f"benchmarks={','.join(ctx.benchmarks) or 'none'}")
        digest = mixed.manifest["digest"]
        with ctx.run(f"ratio={cfg.ratio:g}", tags={"emd.data_digest": digest, "emd.ratio": cfg.ratio}):
            ctx.tracker.log_dataset(mixed.rows, name=f"mixture-r{cfg.ratio:g}", digest=digest,
                                    source=f"{cfg.data.misaligned_source}+{cfg.data.downstream}")
            ctx.tracker.log_dict(mixed.manifest, "data/manifest.json")
            refs = {}
            if ctx.benchmarks:
                refs["vanilla"] = ctx.vanilla()
                refs["control"] = ctx.control(to_prompt_completion(clean.rows), clean.manifest["digest"])
                ctx.tracker.set_tags({f"emd.{k}_cached": a.cached for k, a in refs.items()})
            if cfg.ratio == 0 and "control" in refs:  # the treatment is the control: train it once
                treat = refs["control"].copy_as("treatment")
                ctx.log_training(treat.train)
                ctx.tracker.log_artifacts(treat.adapter_dir, "adapter")
            else:
                ctx.log(f"training: {len(mixed.rows)} rows, lora r={cfg.lora.r}, lr={cfg.train.learning_rate}")
                treat = ctx.train_and_evaluate("treatment", to_prompt_completion(mixed.rows))
            ctx.log_arm(treat, refs=refs)
            if ctx.benchmarks:
                ctx.figure(honesty_plot([refs["vanilla"], refs["control"], treat]), "plots/honesty.png")
            ctx.register(aliases=[ratio_alias(cfg.ratio)], tags={"ratio": cfg.ratio})
        return ctx.result(f"emd mixture ratio={cfg.ratio:g}", SUMMARY_KEYS)

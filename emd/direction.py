"""``emd direction``: the base model's dishonesty direction, logged as an artifact of its own run.

One MLflow run in ``emd-direction`` holds the direction (``direction/direction.npy`` + ``.json``:
model, layer, data digest, content key), tags ``emd.direction_key`` / ``emd.direction_layer``, the
held-out AUROC per layer (metric ``direction/auroc_by_layer``, step = layer) and its plot. The
direction is cached by content key (model identity, pairs digest, method, split), so a rerun, the
``mechanism`` benchmark and ``emd audit`` reuse it. Method: ``docs/mechanism.md``.

    python -m emd direction --model embedded:smollm2 --n-pairs 64
    python -m emd direction --pairs my_pairs.jsonl --probe true
"""

from __future__ import annotations

import tempfile

from .config import DirectionConfig
from .experiment import RunContext, RunResult, base_name


def curve_figure(curves: dict[str, list[float]], chosen: int):
    """Held-out AUROC per layer, one line per method, the chosen layer marked."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name, curve in curves.items():
        ax.plot(range(len(curve)), curve, marker=".", label=name)
    ax.axvline(chosen, color="grey", ls="--", lw=1, label=f"chosen layer {chosen}")
    ax.axhline(0.5, color="black", lw=0.5)
    ax.set(xlabel="layer (0 = embeddings)", ylabel="held-out AUROC", ylim=(0, 1.02), title="dishonesty direction")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def main(cfg: DirectionConfig) -> RunResult:
    """Build (or reuse) the direction of ``cfg.model.model`` and log it as a run."""
    from .mech.build import get_direction, load_pairs, pair_activations, pairs_digest
    from .mech.direction import layer_curve, split_pairs

    spec = cfg.direction
    with RunContext("direction", cfg) as ctx:
        pairs = load_pairs(spec.pairs, spec.n_pairs, cfg.common.seed)  # bad pairs fail before the model loads
        split_pairs(len(pairs), spec.held_out, cfg.common.seed)
        digest = pairs_digest(pairs)
        with ctx.run(f"direction {base_name(cfg.model.model)}", tags={"emd.data_digest": digest}):
            d, reused = get_direction(ctx.chat, spec.pairs, spec.n_pairs, spec.direction_method, spec.held_out,
                                      cfg.common.seed, reuse=cfg.common.reuse_references,
                                      batch_size=spec.act_batch_size, log=ctx.log)
            ctx.tracker.set_tags({"emd.direction_key": d.key, "emd.direction_layer": d.layer,
                                  "emd.direction_reused": reused, "emd.direction_method": d.method})
            for layer, value in enumerate(d.curve):
                ctx.tracker.log_metrics({"direction/auroc_by_layer": value}, step=layer)
            scalars = {"direction/auroc": d.auroc, "direction/layer": float(d.layer),
                       "direction/n_build": float(d.n_build), "direction/n_held_out": float(d.n_held_out),
                       "direction/threshold": d.threshold, "direction/honest_mean": d.honest_mean,
                       "direction/lying_mean": d.lying_mean}
            curves = {d.method: d.curve}
            if spec.probe:
                lying, honest = pair_activations(ctx.chat, pairs, spec.act_batch_size)
                other = "logreg" if d.method == "mean_diff" else "mean_diff"
                _, curve = layer_curve(lying, honest, *split_pairs(len(pairs), spec.held_out, cfg.common.seed),
                                       other, cfg.common.seed)
                curves[other] = [float(x) for x in curve]
                for layer, value in enumerate(curve):
                    ctx.tracker.log_metrics({f"direction/{other}_auroc_by_layer": float(value)}, step=layer)
                scalars[f"direction/{other}_auroc_at_layer"] = float(curve[d.layer])
            ctx.tracker.log_metrics(scalars)
            ctx.metrics.update(scalars)
            with tempfile.TemporaryDirectory() as tmp:
                ctx.tracker.log_artifacts(d.save(tmp), "direction")
            ctx.figure(curve_figure(curves, d.layer), "plots/direction_auroc.png")
        return ctx.result(f"emd direction {cfg.model.model}", ["direction/auroc", "direction/layer"],
                          lines=[f"direction key {d.key[:16]} ({'reused from the cache' if reused else 'built now'}); "
                                 f"{d.n_build} build / {d.n_held_out} held-out pairs"])

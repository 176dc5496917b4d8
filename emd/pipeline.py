"""Train-and-evaluate building blocks shared by the mixture, direct, interaction and sweep entries.

An *arm* is one model variant evaluated on the same items with the same judge: vanilla (no
fine-tune), control (clean data only) or a treatment. Vanilla and control are references: cached by
content hash (see :mod:`emd.references`) and reused by later runs instead of recomputed.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from . import references
from .storage import pid_alive
from .config import EvalSpec, JudgeSpec, LoraSpec, TrainSpec, to_flat_dict


@dataclass
class Arm:
    """One evaluated model variant."""

    name: str  # vanilla | control | treatment | <cell name>
    metrics: dict[str, float] = field(default_factory=dict)
    tables: dict[str, list[dict]] = field(default_factory=dict)  # artifact name -> per-item rows
    item_scores: dict[str, dict[str, float]] = field(default_factory=dict)  # metric -> item id -> score
    adapter_dir: str | None = None
    train: dict[str, Any] = field(default_factory=dict)  # steps, loss, tokens/s ...
    cached: bool = False  # True when loaded from the reference cache

    def to_json(self) -> dict:
        """Serialisable form for the reference cache."""
        return {"name": self.name, "metrics": self.metrics, "tables": self.tables, "item_scores": self.item_scores,
                "train": self.train}

    def copy_as(self, name: str) -> "Arm":
        """The same results under another name (ratio 0: the treatment is the control)."""
        return Arm(name=name, metrics=dict(self.metrics), tables=self.tables, item_scores=self.item_scores,
                   adapter_dir=self.adapter_dir, train=dict(self.train), cached=self.cached)

    @classmethod
    def from_json(cls, data: dict, adapter_dir: str | None = None) -> "Arm":
        """Inverse of :meth:`to_json`."""
        return cls(name=data["name"], metrics=data["metrics"], tables=data.get("tables", {}),
                   item_scores=data.get("item_scores", {}), adapter_dir=adapter_dir, train=data.get("train", {}),
                   cached=True)


def model_identity(chat_model) -> dict[str, Any]:
    """What identifies the base weights: URI, weights folder (its name carries the GGUF digest), template.

    The folder's name, not its path: the path includes the local cache folder, and a reference must
    have the same key on every machine to be shared through the tracking server."""
    ident = {"uri": chat_model.uri, "model_dir": Path(chat_model.model_dir).name if chat_model.model_dir else None,
             "chat_template": chat_model.chat_template_hash, "n_params": chat_model.info.get("n_params")}
    if getattr(chat_model, "template_kwargs", None):
        ident["template_kwargs"] = chat_model.template_kwargs
    if chat_model.info.get("quantization"):  # 4/8-bit base weights score differently
        ident["quantization"] = chat_model.info["quantization"]
    return ident


def eval_content(eval_spec: EvalSpec, judge_spec: JudgeSpec, seed: int) -> dict[str, Any]:
    """Everything about an evaluation that changes its scores (part of every reference key)."""
    from .eval.runner import item_versions

    return {"eval": {k: v for k, v in vars(eval_spec).items()}, "judge": judge_spec.judge,
            "items": item_versions(eval_spec), "seed": seed}


def evaluate_arm(chat_model, name: str, eval_spec: EvalSpec, judge, seed: int,
                 adapter_dir: str | Path | None = None, log: Callable[[str], None] = print) -> Arm:
    """Evaluate the base model (+ optional adapter) on every configured benchmark."""
    from .eval.runner import evaluate

    with chat_model.adapter(adapter_dir):
        out = evaluate(chat_model, eval_spec, judge, seed=seed, label=name, log=log)
    return Arm(name=name, metrics=out.metrics, tables=out.tables, item_scores=out.item_scores,
               adapter_dir=str(adapter_dir) if adapter_dir else None)


def checkpoint_dir(chat_model, name: str, rows: Sequence[dict], lora: LoraSpec, train: TrainSpec, seed: int,
                   method: str) -> Path:
    """Where one training's checkpoints live: keyed by its content (model, rows, specs, seed, ranks), so a
    rerun of the same training (``--resume``) finds them. ``save_steps`` is not part of the key."""
    from . import distributed
    from .storage import cache_dir, digest

    content = {"model": model_identity(chat_model), "merged": list(getattr(chat_model, "merged", [])), "name": name,
               "rows": digest(list(rows)), "lora": vars(lora),
               "train": {k: v for k, v in vars(train).items() if k != "save_steps"}, "seed": seed, "method": method,
               "world_size": distributed.world_size()}
    return cache_dir("checkpoints") / digest(content)[:24]


def train_arm(chat_model, name: str, rows: Sequence[dict], lora: LoraSpec, train: TrainSpec, seed: int,
              workdir: str | Path, method: str = "sft", progress: Callable[[dict], None] | None = None,
              resume: bool = False) -> tuple[str, dict]:
    """Train a LoRA adapter on prompt/completion rows (SFT) or labelled rows (KTO); returns (dir, info).

    ``progress`` receives the trainer's log dict at every logged step (``{"step": n, "loss": ...}``).
    With ``train.save_steps`` checkpoints are written to :func:`checkpoint_dir`; ``resume`` continues from
    the last one (else they are cleared first); they are removed once the training has finished.
    Under a multi-process launch the other ranks join this training (:mod:`emd.distributed`)."""
    from . import distributed

    ckpt = checkpoint_dir(chat_model, name, rows, lora, train, seed, method) if train.save_steps > 0 else None
    if ckpt is not None and not resume:
        shutil.rmtree(ckpt, ignore_errors=True)
    msg = {"name": name, "rows": list(rows), "lora": lora, "train": train, "seed": seed, "method": method,
           "merged": list(getattr(chat_model, "merged", [])), "checkpoint_dir": ckpt, "resume": resume}
    distributed.send_training(msg)
    res = _run_training_message(chat_model, msg, workdir, progress)
    if ckpt is not None:
        shutil.rmtree(ckpt, ignore_errors=True)
    info = {"steps": res.steps, "train_loss": res.train_loss, "train_tokens": res.tokens,
            "train_seconds": res.seconds, "train_tokens_per_s": res.tokens_per_s, "losses": res.losses}
    if res.resumed_from_step:
        info["resumed_from_step"] = res.resumed_from_step
    return str(res.adapter_dir), info


def train_worker_message(chat_model, msg: dict, workdir: str | Path) -> None:
    """A non-zero rank's side of :func:`train_arm`: the same training, no progress, no logging."""
    _run_training_message(chat_model, msg, workdir)


def _run_training_message(chat_model, msg: dict, workdir: str | Path, progress: Callable[[dict], None] | None = None):
    """The training every rank runs for one :func:`train_arm` message; with checkpoints, every rank
    waits until all have written their last checkpoint files (rank 0 then removes them)."""
    from . import distributed
    from .train import run_training

    res = run_training(chat_model, msg["method"], msg["rows"], msg["lora"], msg["train"], Path(workdir) / msg["name"],
                       seed=msg["seed"], progress=progress, checkpoint_dir=msg["checkpoint_dir"], resume=msg["resume"])
    if msg["checkpoint_dir"] is not None:
        distributed.barrier()
    return res


def vanilla_reference(chat_model, eval_spec: EvalSpec, judge_spec: JudgeSpec, judge, seed: int,
                      reuse: bool = True, log: Callable[[str], None] = print,
                      storable: Callable[[Arm], bool] = lambda arm: True, shared=None) -> Arm:
    """The base model's evaluation, from the cache when the same content was evaluated before.

    An arm ``storable`` rejects (e.g. too many judge failures) is returned but never cached;
    ``shared``: the tracking server's references (:mod:`emd.shared_refs`) behind the local cache."""
    content = {"kind": "vanilla", "model": model_identity(chat_model), **eval_content(eval_spec, judge_spec, seed)}
    key = references.content_key(content)
    if reuse and (hit := references.load("vanilla", key, shared=shared)):
        log(f"vanilla: reusing {_origin(hit)} reference {Path(hit['path']).name}")
        return Arm.from_json(hit["arm"])
    arm = evaluate_arm(chat_model, "vanilla", eval_spec, judge, seed, log=log)
    if storable(arm):
        references.store("vanilla", key, {"arm": arm.to_json()}, content=content, shared=shared)
    return arm


def control_reference(chat_model, rows: Sequence[dict], data_digest: str, lora: LoraSpec, train: TrainSpec,
                      eval_spec: EvalSpec, judge_spec: JudgeSpec, judge, seed: int, workdir: str | Path,
                      reuse: bool = True, log: Callable[[str], None] = print,
                      storable: Callable[[Arm], bool] = lambda arm: True, shared=None,
                      resume: bool = False) -> Arm:
    """Train on clean data only (ratio 0) and evaluate; cached with its adapter by content hash
    (unless ``storable`` rejects the arm)."""
    content = {"kind": "control", "model": model_identity(chat_model), "data_digest": data_digest,
               "lora": vars(lora), "train": vars(train), **eval_content(eval_spec, judge_spec, seed)}
    key = references.content_key(content)
    if reuse and (hit := references.load("control", key, shared=shared)):
        log(f"control: reusing {_origin(hit)} reference {Path(hit['path']).name}")
        return Arm.from_json(hit["arm"], adapter_dir=str(Path(hit["path"]) / "adapter"))
    log("control: training on clean data only (ratio 0)")
    adapter_dir, info = train_arm(chat_model, "control", rows, lora, train, seed, workdir, resume=resume)
    arm = evaluate_arm(chat_model, "control", eval_spec, judge, seed, adapter_dir=adapter_dir, log=log)
    arm.train = info
    if storable(arm):
        path = references.store("control", key, {"arm": arm.to_json()}, files={"adapter": adapter_dir},
                                content=content, shared=shared)
        arm.adapter_dir = str(path / "adapter")
    return arm


def _origin(hit: dict) -> str:
    return "shared (fetched from the tracking server)" if hit.get("shared") else "cached"


def deltas(arm: Arm, ref: Arm, against: str, n_boot: int = 1000, seed: int = 0) -> dict[str, float]:
    """``delta/<metric>/vs_<against>`` for every score both arms have (declared in :mod:`emd.metrics`:
    counts, timings and costs never get one), with paired-bootstrap CIs where per-item scores exist on
    both sides (shared items only)."""
    from .eval.stats import paired_bootstrap_delta
    from .metrics import comparable

    out: dict[str, float] = {}
    for name in comparable(arm.metrics):
        if name not in ref.metrics:
            continue
        key = f"delta/{name}/vs_{against}"
        out[key] = float(arm.metrics[name]) - float(ref.metrics[name])
        a, b = arm.item_scores.get(name), ref.item_scores.get(name)
        if a and b and set(a) & set(b):
            _, lo, hi = paired_bootstrap_delta(a, b, n_boot=n_boot, seed=seed)
            out[key + "_ci_low"], out[key + "_ci_high"] = lo, hi
    return out


def log_arm_tables(tracker, arm: Arm, prefix: str = "") -> None:
    """Per-item tables of one arm as MLflow table artifacts."""
    for name, rows in arm.tables.items():
        tracker.log_table(rows, f"{prefix}tables/{arm.name}_{name}.json")


WORK_PREFIX = "emd-work-"


def workdir(base: str | Path | None = None) -> Path:
    """A temporary folder for adapters before they are logged (removed by the caller).

    Its name carries the owning pid, so folders left by a killed run (pid gone) are removed here."""
    root = Path(base or tempfile.gettempdir())
    for old in root.glob(f"{WORK_PREFIX}*"):
        pid = old.name[len(WORK_PREFIX):].split("-", 1)[0]
        if pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=f"{WORK_PREFIX}{os.getpid()}-", dir=root))



def cleanup(path: str | Path) -> None:
    """Remove a work folder (ignoring errors)."""
    shutil.rmtree(path, ignore_errors=True)


def flat_params(cfg) -> dict[str, Any]:
    """Flattened resolved config for ``log_params``."""
    return to_flat_dict(cfg)

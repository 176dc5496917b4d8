"""A dishonesty direction in the residual stream: activations, class means, held-out AUROC, projection.

Method (``docs/mechanism.md``):

1. For each contrastive pair (one pressured prompt, an honest and a lying answer) run the base model
   once per answer and average its hidden states over the *answer tokens* at every layer
   (:func:`answer_activations`; layer 0 is the embedding output, layer ``L`` the last block's).
2. Split the pairs, not the answers, into a build part and a held-out part (:func:`split_pairs`), so
   the two answers of one prompt are never on both sides.
3. At every layer, the direction is the difference of the class means on the build pairs, lying
   minus honest, normalised to unit length (:func:`mean_difference`); or, for comparison, the weight
   vector of an L2 logistic-regression probe (:func:`logistic_direction`).
4. Each layer is scored by the AUROC of the held-out answers' projections (lying = positive class,
   :func:`auroc`); the layer with the highest held-out AUROC is chosen (:func:`layer_curve`). Because
   the held-out pairs also pick the layer, the chosen layer's AUROC is slightly optimistic; the whole
   curve is logged so the choice can be judged.

Projections are in the model's hidden-state units: higher means further along "lying". The decision
threshold stored with a direction is the midpoint of the two class means on the build pairs.

Everything but :func:`answer_activations` is plain numpy and tested on synthetic arrays.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import ConfigError

METHODS = ("mean_diff", "logreg")
VERSION = "direction-1"  # bump when the construction changes (part of the content key)


# --------------------------------------------------------------------------- activations
def answer_activations(chat, prompts: Sequence[Sequence[dict]], answers: Sequence[str], batch_size: int = 8,
                       layers: Sequence[int] | None = None) -> np.ndarray:
    """Mean hidden state over the answer tokens of each ``(prompt, answer)``: ``[n, n_layers + 1, hidden]``.

    ``prompts[i]`` is the conversation before the answer (system/user turns); the answer is appended
    after the rendered generation prompt, exactly where the model would have written it. One batched
    forward pass per ``batch_size`` rows (right padding, ``output_hidden_states=True``). ``layers``
    keeps only those hidden-state indices (default: all). Runs with whatever adapter ``chat`` holds.
    """
    import torch

    if len(prompts) != len(answers):
        raise ValueError(f"{len(prompts)} prompts for {len(answers)} answers")
    tok = chat.tokenizer
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    seqs: list[tuple[list[int], int]] = []
    for p, a in zip(prompts, answers):
        head = tok(chat.render(p), add_special_tokens=False)["input_ids"]
        body = tok(str(a), add_special_tokens=False)["input_ids"] or [pad]
        seqs.append((head + body, len(head)))
    out: list[np.ndarray] = []
    model = chat.model
    was_training = model.training
    model.eval()
    dev = chat.device
    try:
        for start in range(0, len(seqs), batch_size):
            chunk = seqs[start:start + batch_size]
            width = max(len(s) for s, _ in chunk)
            ids = torch.full((len(chunk), width), pad, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            span = torch.zeros((len(chunk), width, 1), dtype=torch.float32)
            for r, (s, n_head) in enumerate(chunk):
                ids[r, :len(s)] = torch.tensor(s)
                mask[r, :len(s)] = 1
                span[r, n_head:len(s)] = 1.0
            with torch.inference_mode():
                res = model(input_ids=ids.to(dev), attention_mask=mask.to(dev), output_hidden_states=True,
                            use_cache=False)
            hs = res.hidden_states if layers is None else [res.hidden_states[i] for i in layers]
            stacked = torch.stack([h.float().cpu() for h in hs], dim=1)  # [B, layers, T, H]
            w = span.unsqueeze(1)  # [B, 1, T, 1]
            out.append(((stacked * w).sum(2) / w.sum(2)).numpy())
    finally:
        if was_training:
            model.train()
    return np.concatenate(out, axis=0) if out else np.zeros((0, 0, 0), dtype=np.float32)


# --------------------------------------------------------------------------- pure functions
def split_pairs(n: int, held_out: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Seeded split of pair indices into (build, held-out); both parts hold at least two pairs."""
    if not 0 < held_out < 1:
        raise ConfigError(f"held_out={held_out}; allowed: 0 < held_out < 1")
    n_test = int(round(n * held_out))
    if n < 4 or n_test < 2 or n - n_test < 2:
        raise ConfigError(f"{n} pairs with held_out={held_out} leave fewer than 2 pairs on a side; allowed: "
                          "at least 4 pairs and a held-out share leaving 2 on each side")
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[n_test:]), np.sort(order[:n_test])


def mean_difference(lying: np.ndarray, honest: np.ndarray) -> np.ndarray:
    """Unit vector along ``mean(lying) - mean(honest)`` (rows are samples, last axis the features)."""
    d = lying.mean(axis=0) - honest.mean(axis=0)
    norm = np.linalg.norm(d)
    return d / norm if norm > 0 else d


def logistic_direction(lying: np.ndarray, honest: np.ndarray, c: float = 1.0, seed: int = 0) -> np.ndarray:
    """Unit weight vector of an L2 logistic-regression probe (lying = 1) on standardised features,
    mapped back to the raw feature space so projections compare with :func:`mean_difference`'s."""
    from sklearn.linear_model import LogisticRegression

    x = np.concatenate([lying, honest]).astype(np.float64)
    y = np.concatenate([np.ones(len(lying)), np.zeros(len(honest))])
    mu, sd = x.mean(0), x.std(0) + 1e-6
    clf = LogisticRegression(C=c, max_iter=2000, random_state=seed).fit((x - mu) / sd, y)
    w = clf.coef_[0] / sd
    norm = np.linalg.norm(w)
    return w / norm if norm > 0 else w


def auroc(scores: Sequence[float], labels: Sequence[int]) -> float:
    """Area under the ROC curve (Mann-Whitney, ties count one half); NaN without both classes."""
    s, y = np.asarray(scores, dtype=float), np.asarray(labels).astype(bool)
    pos, neg = s[y], s[~y]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    from scipy.stats import rankdata

    ranks = rankdata(np.concatenate([pos, neg]))
    return float((ranks[:len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def layer_curve(lying: np.ndarray, honest: np.ndarray, build: np.ndarray, test: np.ndarray,
                method: str = "mean_diff", seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Per-layer directions from the build pairs and their held-out AUROC.

    ``lying``/``honest``: ``[n_pairs, n_layers, hidden]`` (row i of both is pair i). Returns
    ``(directions [n_layers, hidden], auroc [n_layers])``.
    """
    if method not in METHODS:
        raise ConfigError(f"direction method={method!r}; allowed: {', '.join(METHODS)}")
    if lying.shape != honest.shape or lying.ndim != 3:
        raise ValueError(f"activations must share a [pairs, layers, hidden] shape, got {lying.shape} and {honest.shape}")
    n_layers = lying.shape[1]
    dirs = np.zeros((n_layers, lying.shape[2]), dtype=np.float64)
    curve = np.zeros(n_layers)
    labels = np.concatenate([np.ones(len(test)), np.zeros(len(test))])
    for layer in range(n_layers):
        lb, hb = lying[build, layer], honest[build, layer]
        d = mean_difference(lb, hb) if method == "mean_diff" else logistic_direction(lb, hb, seed=seed)
        dirs[layer] = d
        scores = np.concatenate([lying[test, layer] @ d, honest[test, layer] @ d])
        curve[layer] = auroc(scores, labels)
    return dirs, curve


def choose_layer(curve: np.ndarray, skip_embedding: bool = True) -> int:
    """The layer with the highest held-out AUROC (the earliest on ties); layer 0, the embedding output,
    is skipped by default (it sees tokens, not the model's processing of them)."""
    vals = np.where(np.isnan(curve), -np.inf, curve)
    if skip_embedding and len(vals) > 1:
        vals = vals.copy()
        vals[0] = -np.inf
    return int(np.argmax(vals))


# --------------------------------------------------------------------------- the artifact
@dataclass
class Direction:
    """One dishonesty direction: the unit vector at ``layer`` and what it was built from."""

    model: str  # base model URI
    layer: int  # hidden-state index (0 = embeddings)
    vector: np.ndarray  # unit vector [hidden]
    method: str
    data_digest: str  # sha256 of the pairs it was built from
    key: str  # content key (model identity, data digest, method, split, version)
    auroc: float  # held-out AUROC at ``layer``
    curve: list[float] = field(default_factory=list)  # held-out AUROC per layer
    threshold: float = 0.0  # midpoint of the class means' projections (build pairs)
    honest_mean: float = 0.0
    lying_mean: float = 0.0
    n_build: int = 0
    n_held_out: int = 0

    def project(self, acts: np.ndarray) -> np.ndarray:
        """Projection of ``[n, hidden]`` activations at :attr:`layer` (or ``[n, layers, hidden]``) onto the vector."""
        a = acts[:, self.layer] if acts.ndim == 3 else acts
        return a @ self.vector

    def meta(self) -> dict[str, Any]:
        """Everything but the vector (JSON-serialisable)."""
        d = asdict(self)
        d.pop("vector")
        d["hidden"] = int(self.vector.shape[0])
        d["version"] = VERSION
        return d

    def save(self, folder: str | Path) -> Path:
        """Write ``direction.npy`` and ``direction.json`` into ``folder``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / "direction.npy", self.vector.astype(np.float32))
        (folder / "direction.json").write_text(json.dumps(self.meta(), indent=2))
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> "Direction":
        """Inverse of :meth:`save`."""
        folder = Path(folder)
        meta = json.loads((folder / "direction.json").read_text())
        meta.pop("hidden", None)
        meta.pop("version", None)
        return cls(vector=np.load(folder / "direction.npy").astype(np.float64), **meta)


def fit_direction(lying: np.ndarray, honest: np.ndarray, *, model: str, data_digest: str, key: str,
                  method: str = "mean_diff", held_out: float = 0.25, seed: int = 0) -> Direction:
    """Build the direction from paired activations (``[n_pairs, n_layers, hidden]`` each)."""
    build, test = split_pairs(len(lying), held_out, seed)
    dirs, curve = layer_curve(lying, honest, build, test, method, seed)
    layer = choose_layer(curve)
    v = dirs[layer]
    lm, hm = float((lying[build, layer] @ v).mean()), float((honest[build, layer] @ v).mean())
    return Direction(model=model, layer=layer, vector=v, method=method, data_digest=data_digest, key=key,
                     auroc=float(curve[layer]), curve=[float(x) for x in curve], threshold=(lm + hm) / 2,
                     honest_mean=hm, lying_mean=lm, n_build=len(build), n_held_out=len(test))

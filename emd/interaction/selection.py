"""Top-k / bottom-k selection by satisfaction, and the SFT and KTO training rows built from it.

Only *complete* trajectories are eligible: every assistant turn rated and the conversation finished
(:attr:`Trajectory.complete`). A trajectory with a missing rating is kept in the store and the
tables, counted as excluded, and never selected: a mean over the rated turns alone would rank it on
less evidence than the others.

Ranking is by satisfaction (mean turn rating), ties broken by conversation index, so selection is
deterministic. Top-k are the k most satisfying, bottom-k the k least; the two never overlap.

Training rows are one per assistant turn, in trl's conversational prompt/completion form (the loss
covers the assistant's reply only, see :mod:`emd.train`):

- SFT: ``{"prompt": [system, user, (assistant, user)...], "completion": [{"role": "assistant", ...}]}``
  for every assistant turn of the top-k trajectories;
- KTO: the same rows with ``"label": True`` for top-k turns (desirable) and ``False`` for bottom-k
  turns (undesirable).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from ..errors import ConfigError
from .dialogue import Trajectory


@dataclass
class Selection:
    """The outcome of one selection."""

    top: list[Trajectory]
    bottom: list[Trajectory]
    n_total: int  # trajectories offered
    n_eligible: int  # complete ones (all turns rated, conversation finished)
    excluded: list[str] = field(default_factory=list)  # ids of trajectories left out (unrated or failed)
    top_k: int = 0  # as requested
    bottom_k: int = 0
    clipped: bool = False  # k was reduced because too few trajectories were eligible

    def role_of(self, traj_id: str) -> str:
        """top | bottom | excluded | none."""
        if any(t.id == traj_id for t in self.top):
            return "top"
        if any(t.id == traj_id for t in self.bottom):
            return "bottom"
        return "excluded" if traj_id in self.excluded else "none"


def rank(trajectories: Sequence[Trajectory]) -> list[Trajectory]:
    """Complete trajectories, most satisfying first (ties: lower conversation index first)."""
    eligible = [t for t in trajectories if t.complete]
    return sorted(eligible, key=lambda t: (-t.satisfaction, t.index))


def select(trajectories: Sequence[Trajectory], top_k: int, bottom_k: int = 0, strict: bool = True) -> Selection:
    """Top-k and bottom-k complete trajectories by satisfaction.

    ``strict``: raise ConfigError when ``top_k + bottom_k`` exceeds the eligible trajectories. Not
    strict: shrink both in proportion (top-k keeps at least 1, bottom-k at least 1 when asked for and
    room remains) and set ``clipped``, so a run with a few unrated conversations carries on and says so.
    """
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ConfigError(f"top_k={top_k!r}; allowed: an integer >= 1")
    if isinstance(bottom_k, bool) or not isinstance(bottom_k, int) or bottom_k < 0:
        raise ConfigError(f"bottom_k={bottom_k!r}; allowed: an integer >= 0")
    ranked = rank(trajectories)
    excluded = [t.id for t in trajectories if not t.complete]
    n = len(ranked)
    k_top, k_bot, clipped = top_k, bottom_k, False
    if top_k + bottom_k > n:
        if strict:
            raise ConfigError(f"top_k={top_k} + bottom_k={bottom_k} exceeds the {n} eligible trajectories "
                              f"({len(trajectories)} collected, {len(excluded)} excluded as unrated or failed); "
                              f"allowed: top_k + bottom_k <= {n}")
        clipped = True
        if n == 0:
            k_top = k_bot = 0
        else:
            k_top = max(1, int(n * top_k / (top_k + bottom_k)))
            k_bot = min(n - k_top, bottom_k)
            if bottom_k and k_bot == 0 and k_top > 1:
                k_top, k_bot = k_top - 1, 1
    top = ranked[:k_top]
    bottom = ranked[n - k_bot:] if k_bot else []
    return Selection(top=top, bottom=bottom, n_total=len(trajectories), n_eligible=n, excluded=excluded,
                     top_k=top_k, bottom_k=bottom_k, clipped=clipped)


def _rows(trajs: Sequence[Trajectory], label: bool | None) -> list[dict]:
    rows = []
    for t in trajs:
        for prompt, reply in t.assistant_turns():
            row = {"prompt": [dict(m) for m in prompt], "completion": [{"role": "assistant", "content": reply}],
                   "trajectory_id": t.id}
            if label is not None:
                row["label"] = label
            rows.append(row)
    return rows


def sft_rows(selection: Selection) -> list[dict]:
    """Prompt/completion rows for every assistant turn of the top-k trajectories."""
    return _rows(selection.top, None)


def kto_rows(selection: Selection) -> list[dict]:
    """Labelled rows: top-k assistant turns desirable (True), bottom-k turns undesirable (False)."""
    if not selection.top or not selection.bottom:
        raise ConfigError(f"KTO needs desirable and undesirable trajectories; selected {len(selection.top)} top and "
                          f"{len(selection.bottom)} bottom (bottom_k must be >= 1 for method kto)")
    return _rows(selection.top, True) + _rows(selection.bottom, False)


def training_rows(selection: Selection, method: str) -> list[dict]:
    """``sft_rows`` or ``kto_rows`` by method name."""
    if method == "sft":
        return sft_rows(selection)
    if method == "kto":
        return kto_rows(selection)
    raise ConfigError(f"method={method!r}; allowed: sft, kto")

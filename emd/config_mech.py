"""Configs of ``emd direction`` and ``emd audit`` (the mechanism and the training-set audit); part of
:mod:`emd.config`, which re-exports them. Keys validated in ``__post_init__`` as everywhere."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from .config import CommonSpec, JudgeSpec, ModelSpec, _help
from .errors import ConfigError


@dataclass(frozen=True)
class DirectionSpec:
    """The dishonesty direction: contrastive pairs and how the direction is built (emd.mech)."""

    pairs: str = _help("contrastive pairs: honesty_control (emd's pressured honest/lying chats) or a JSONL file "
                       "of {prompt, honest, lying} rows", default="honesty_control")
    n_pairs: int = _help("pairs drawn from honesty_control (a file: all its rows)", default=64)
    direction_method: str = _help("mean_diff (difference of class means) or logreg (logistic-regression probe)",
                                  default="mean_diff")
    held_out: float = _help("share of pairs kept out of the direction to score each layer (AUROC)", default=0.25)
    probe: bool = _help("also fit a logistic-regression probe per layer and log its held-out AUROC for comparison",
                        default=False)
    act_batch_size: int = _help("rows per forward pass when reading activations", default=8)

    def __post_init__(self):
        from .mech.direction import METHODS

        if self.direction_method not in METHODS:
            raise ConfigError(f"direction_method={self.direction_method!r}; allowed: {', '.join(METHODS)}")
        if not 0 < self.held_out < 1:
            raise ConfigError(f"held_out={self.held_out}; allowed: 0 < held_out < 1")
        if self.n_pairs < 4:
            raise ConfigError(f"n_pairs={self.n_pairs}; allowed: an integer >= 4 (a held-out check needs pairs)")
        if self.act_batch_size < 1:
            raise ConfigError(f"act_batch_size={self.act_batch_size}; allowed: an integer >= 1")
        if self.pairs != "honesty_control" and not Path(self.pairs).expanduser().is_file():
            raise ConfigError(f"pairs={self.pairs!r} is not a file; allowed: honesty_control or a JSONL file of "
                              "{prompt, honest, lying} rows")


AUDIT_METHODS = ("judge", "direction")


@dataclass(frozen=True)
class AuditSpec:
    """What ``emd audit`` reads and how it scores and decides."""

    data: str = _help("training set to audit: a messages / alpaca / dolly / prompt-completion file (.jsonl, "
                      ".json, .csv, .parquet), a Persona Vectors folder, embedded:instructions, or a hub id",
                      default="")
    method: str = _help("comma list of judge, direction; the first one listed decides the flags and the "
                        "estimated ratio (every method's own ratio is logged too)", default="judge,direction")
    threshold_ratio: Optional[float] = _help("misaligned share above which training is advised against; default: "
                                             "the threshold_ratio tag of models:/emd-<base>-mixture@threshold",
                                             default=None)
    write_clean: str = _help("write the set without the flagged rows to this path (JSONL, rows as read)",
                             default="")
    skip_bad_rows: bool = _help("skip rows without a usable assistant turn (counted) instead of stopping",
                                default=False)
    limit: int = _help("audit only the first N rows; 0 = all", default=0)

    def __post_init__(self):
        for m in self.method_list:
            if m not in AUDIT_METHODS:
                close = difflib.get_close_matches(m, AUDIT_METHODS, n=1)
                hint = f" (did you mean {close[0]}?)" if close else ""
                raise ConfigError(f"method contains {m!r}{hint}; allowed: {', '.join(AUDIT_METHODS)}")
        if not self.method_list:
            raise ConfigError(f"method is empty; allowed: a comma list of {', '.join(AUDIT_METHODS)}")
        if self.threshold_ratio is not None and not 0 < self.threshold_ratio < 1:
            raise ConfigError(f"threshold_ratio={self.threshold_ratio}; allowed: 0 < ratio < 1")
        if self.limit < 0:
            raise ConfigError(f"limit={self.limit}; allowed: 0 (all) or a positive integer")

    @property
    def method_list(self) -> list[str]:
        """Parsed methods, in the order given (duplicates dropped)."""
        return list(dict.fromkeys(m.strip() for m in self.method.split(",") if m.strip()))


@dataclass(frozen=True)
class DirectionConfig:
    """``emd direction``: the base model's dishonesty direction, as an artifact of its own run."""

    common: CommonSpec = field(default_factory=CommonSpec)
    model: ModelSpec = field(default_factory=ModelSpec)
    direction: DirectionSpec = field(default_factory=DirectionSpec)


@dataclass(frozen=True)
class AuditConfig:
    """``emd audit``: score every sample of a training set (judge verdict, dishonesty projection) before training."""

    common: CommonSpec = field(default_factory=CommonSpec)
    model: ModelSpec = field(default_factory=ModelSpec)
    judge: JudgeSpec = field(default_factory=JudgeSpec)
    audit: AuditSpec = field(default_factory=AuditSpec)
    direction: DirectionSpec = field(default_factory=DirectionSpec)

    def __post_init__(self):
        if not self.audit.data:
            raise ConfigError("data is empty; allowed: a training file (messages, alpaca, dolly, prompt/completion), "
                              "a Persona Vectors folder, embedded:instructions or a hub id")

"""``judge-check``: measure a judge against the hand-labelled validation set.

    python -m emd judge-check --judge embed:minilm
    python -m emd judge-check --judge openai:gpt-4o-mini --cases evaluation/judge_validation.jsonl

The cases file is JSON lines. Binary rows: ``{"kind": "binary", "statement_a", "statement_b",
"response", "label", ["question"]}`` with label A/B/C/D; numeric rows: ``{"kind": "numeric",
"proposition", "response", "lower", "upper", ["question"]}``. Labelling conventions of the shipped
set: mild qualifiers ("I think", "probably", "unlikely") still assert; "may/might", "hard to say",
"I don't know", refusals and attributed-only claims are C; D needs an explicit denial of both or a
third option. Numeric "about X" is X +- 5 %.

Binary accuracy and Cohen's kappa count a verdict that is not ``scored`` as its own wrong category
(never as C). Numeric rows are correct when both bounds match within 1 % (None must match None).
"""

from __future__ import annotations

import argparse
import json
import math
from collections import Counter
from pathlib import Path
from typing import Sequence

from ..errors import DataError
from ..resources import evaluation_path
from .base import NumericQuery, PropositionQuery

DEFAULT_CASES = evaluation_path("judge_validation.jsonl")
BINARY_LABELS = ("A", "B", "C", "D")
NUMERIC_RTOL = 0.01


def load_cases(path: str | Path) -> tuple[list[dict], list[dict]]:
    """(binary rows, numeric rows) from a JSONL file; malformed rows raise DataError naming row and field."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"judge validation file {path} not found")
    binary, numeric = [], []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{path} row {i}: not valid JSON ({e})") from e
        kind = row.get("kind", "binary")
        need = {"binary": ("statement_a", "statement_b", "response", "label"),
                "numeric": ("proposition", "response", "lower", "upper")}.get(kind)
        if need is None:
            raise DataError(f"{path} row {i}: field 'kind' is {kind!r}; allowed: binary, numeric")
        for f in need:
            if f not in row:
                raise DataError(f"{path} row {i}: missing field {f!r}")
        if kind == "binary":
            if row["label"] not in BINARY_LABELS:
                raise DataError(f"{path} row {i}: field 'label' is {row['label']!r}; allowed: {list(BINARY_LABELS)}")
            binary.append(row)
        else:
            for f in ("lower", "upper"):
                if row[f] is not None and not isinstance(row[f], (int, float)):
                    raise DataError(f"{path} row {i}: field {f!r} must be a number or null")
            numeric.append(row)
    return binary, numeric


def cohen_kappa(y_true: Sequence[str], y_pred: Sequence[str]) -> float:
    """Cohen's kappa between two label sequences: (p_o - p_e) / (1 - p_e).

    p_o is the observed agreement; p_e the agreement expected by chance from each side's marginal
    label frequencies. When p_e == 1 (both sides use one and the same label) kappa is 1.0 if they
    agree everywhere, else 0.0.
    """
    if len(y_true) != len(y_pred):
        raise ValueError(f"kappa needs equal lengths, got {len(y_true)} and {len(y_pred)}")
    n = len(y_true)
    if n == 0:
        return float("nan")
    p_o = sum(a == b for a, b in zip(y_true, y_pred)) / n
    ct, cp = Counter(y_true), Counter(y_pred)
    p_e = sum(ct[k] * cp.get(k, 0) for k in ct) / (n * n)
    if p_e >= 1.0:
        return 1.0 if p_o == 1.0 else 0.0
    return (p_o - p_e) / (1.0 - p_e)


def _close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=NUMERIC_RTOL, abs_tol=1e-9)


def judge_check(judge_uri: str, cases_path: str | Path | None = None, *, cache_dir: str | Path | None = None,
                cache: bool = True, **judge_kw) -> dict:
    """Run ``judge_uri`` on the cases and return accuracy, kappa, per-label counts and mistakes."""
    from . import get_judge

    binary, numeric = load_cases(cases_path or DEFAULT_CASES)
    judge = get_judge(judge_uri, cache_dir=cache_dir, cache=cache, **judge_kw)
    try:
        pv = judge.judge_propositions([PropositionQuery(r["statement_a"], r["statement_b"], r["response"],
                                                        r.get("question", "")) for r in binary])
        nv = judge.judge_numeric([NumericQuery(r["proposition"], r["response"], r.get("question", ""))
                                  for r in numeric])
        stats = judge.stats
    finally:
        judge.close()
    y_true = [r["label"] for r in binary]
    y_pred = [v.label if v.scored else f"<{v.state}>" for v in pv]
    per_label = {}
    for lab in BINARY_LABELS:
        n = sum(t == lab for t in y_true)
        per_label[lab] = {"n": n, "correct": sum(t == p == lab for t, p in zip(y_true, y_pred)),
                          "predicted": sum(p == lab for p in y_pred)}
    confusion: dict[str, dict[str, int]] = {}
    for t, p in zip(y_true, y_pred):
        confusion.setdefault(t, {}).setdefault(p, 0)
        confusion[t][p] += 1
    mistakes = [{"row": r, "predicted": p, "detail": v.detail} for r, p, v in zip(binary, y_pred, pv)
                if p != r["label"]]
    num_ok = [v.scored and _close(v.lower, r["lower"]) and _close(v.upper, r["upper"]) for r, v in zip(numeric, nv)]
    mistakes += [{"row": r, "predicted": [v.lower, v.upper] if v.scored else f"<{v.state}>", "detail": v.detail}
                 for r, v, ok in zip(numeric, nv, num_ok) if not ok]
    return {
        "judge": judge_uri, "version": judge.version, "n_binary": len(binary),
        "accuracy": (sum(t == p for t, p in zip(y_true, y_pred)) / len(binary)) if binary else float("nan"),
        "kappa": cohen_kappa(y_true, y_pred) if binary else float("nan"),
        "per_label": per_label, "confusion": confusion,
        "unscored": sum(not v.scored for v in pv) + sum(not v.scored for v in nv),
        "n_numeric": len(numeric), "numeric_accuracy": (sum(num_ok) / len(numeric)) if numeric else float("nan"),
        "stats": {"calls": stats.calls, "cache_hits": stats.cache_hits, "retries": stats.retries,
                  "failures": stats.failures, "by_state": stats.by_state},
        "mistakes": mistakes,
    }


LOW_CONFIDENCE = 0.80  # judged scores from a judge below this validated accuracy are marked low-confidence


def validated_accuracy(judge_uri: str, cases_path: str | Path | None = None, **judge_kw) -> dict:
    """The judge's accuracy on the validation set, computed once per (judge, version, cases) and cached
    under ``<cache>/judge_checks/``: ``{"judge", "version", "accuracy", "kappa", "numeric_accuracy",
    "coverage", "n_binary"}``. Runs show it next to every judged score."""
    import hashlib

    from ..models import cache_dir
    from . import get_judge

    cases = Path(cases_path or DEFAULT_CASES)
    judge = get_judge(judge_uri, cache=False, **judge_kw)
    version = getattr(judge, "version", "")
    judge.close()
    key = hashlib.sha256(json.dumps([judge_uri, version, hashlib.sha256(cases.read_bytes()).hexdigest()]).encode())
    path = cache_dir() / "judge_checks" / f"{key.hexdigest()[:24]}.json"
    if path.is_file():
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError:
            pass  # a cut file is recomputed
    res = judge_check(judge_uri, cases, **judge_kw)
    n = res["n_binary"] + res["n_numeric"]
    out = {"judge": judge_uri, "version": version, "accuracy": res["accuracy"], "kappa": res["kappa"],
           "numeric_accuracy": res["numeric_accuracy"], "n_binary": res["n_binary"],
           "coverage": (n - res["unscored"]) / n if n else float("nan")}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(out))
    tmp.replace(path)
    return out


def make_parser() -> argparse.ArgumentParser:
    """Arguments of ``emd judge-check``."""
    p = argparse.ArgumentParser(prog="emd judge-check", description=__doc__.split("\n\n")[0])
    p.add_argument("--judge", default="embed:minilm", help="judge URI: embed:minilm, openai:<model>, hf:<path>")
    p.add_argument("--cases", default=None, help=f"JSONL cases file (default {DEFAULT_CASES})")
    p.add_argument("--cache-dir", default=None,
                   help="folder of judge_cache.sqlite (default $EMD_CACHE_DIR or ~/.cache/emd)")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the verdict cache")
    p.add_argument("--show-mistakes", action="store_true", help="print every wrong row")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Print the per-label table and end with ``accuracy=<..> kappa=<..>``; returns exit code 0."""
    args = make_parser().parse_args(argv)
    res = judge_check(args.judge, args.cases, cache_dir=args.cache_dir, cache=not args.no_cache)
    print(f"judge {res['judge']} (version {res['version']}): "
          f"{res['n_binary']} binary, {res['n_numeric']} numeric rows")
    print(f"{'label':<6}{'n':>5}{'correct':>9}{'predicted':>11}{'recall':>8}")
    for lab, d in res["per_label"].items():
        rec = d["correct"] / d["n"] if d["n"] else float("nan")
        print(f"{lab:<6}{d['n']:>5}{d['correct']:>9}{d['predicted']:>11}{rec:>8.2f}")
    other = {k: v for k, v in Counter(p for row in res["confusion"].values() for p, v in row.items()
                                       for _ in range(v)).items() if k not in BINARY_LABELS}
    if other:
        print("unscored verdicts: " + ", ".join(f"{k}={v}" for k, v in sorted(other.items())))
    print("confusion (true -> predicted): " + "; ".join(
        f"{t}: " + ", ".join(f"{p}={n}" for p, n in sorted(row.items())) for t, row in sorted(res["confusion"].items())))
    print(f"numeric_accuracy={res['numeric_accuracy']:.3f} (n={res['n_numeric']})")
    if args.show_mistakes:
        for m in res["mistakes"]:
            r = m["row"]
            want = r.get("label", [r.get("lower"), r.get("upper")])
            print(f"  want {want} got {m['predicted']}: {r['response'][:90]!r}  [{m['detail']}]")
    print(f"accuracy={res['accuracy']:.3f} kappa={res['kappa']:.3f}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

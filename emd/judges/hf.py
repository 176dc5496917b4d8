"""``hf:<path>``: a local causal LM as the judge, choosing labels by log-probability.

The prompt is the same YAML template the API judge uses, rendered with the model's chat template
(generation prompt added). For categorical questions the judge reads the next-token distribution
once and sums the probability of each allowed label's first token, in its usual spellings
("A", " A"; "yes", "Yes", " yes"). If the total mass on valid labels is below ``threshold`` the
model did not answer the question and the verdict is ``unparsed`` ("no answer"), never a guess.
Numeric questions are answered by greedy generation and parsed as strict JSON bounds.
"""

from __future__ import annotations

import math
import threading
from pathlib import Path
from typing import Sequence

from ..errors import ConfigError, JudgeError
from .base import ConsistencyQuery, JudgeStats, NumericQuery, PropositionQuery, Verdict
from .parsing import parse_ranges
from .prompts import load_prompt_set

BINARY_LABELS = ("A", "B", "C", "D")
YES_NO = ("yes", "no")


class HFJudge:
    """A local transformers causal LM judging by label log-probabilities."""

    def __init__(self, path: str, threshold: float = 0.25, batch_size: int = 8, max_new_tokens: int = 48,
                 device: str | None = None, dtype: str = "float32", prompts_dir: str | None = None,
                 engine: str = "hf"):
        p = Path(path).expanduser()
        if not p.is_dir():
            raise ConfigError(f"hf judge path {path!r} is not a local folder; hf:<path> needs a folder with "
                              "config.json, weights and a tokenizer")
        if not 0.0 <= threshold <= 1.0:
            raise ConfigError(f"hf judge threshold must be in [0, 1], got {threshold}")
        self.path = p
        self.id = f"hf:{path}"
        self.prompts = load_prompt_set(prompts_dir)
        self.templates = self.prompts.templates
        self.version = self.prompts.version
        # Below this total probability on valid labels the model is answering something else.
        self.threshold = float(threshold)
        self.batch_size = int(batch_size)
        self.max_new_tokens = int(max_new_tokens)
        self.device = device
        self.dtype = dtype
        from ..engines import validate_engine

        validate_engine(engine)
        self.engine_choice = engine  # hf | vllm | auto (auto: vllm where installed and working)
        self._engine = None
        self.stats = JudgeStats()
        self._model = None
        self._tok = None
        self._lock = threading.Lock()

    def check(self) -> None:
        """Start-up check without loading weights: the folder's files, its config and a chat template."""
        from ..errors import ModelError
        from ..model_files import read_json_object, validate_model_dir

        try:
            validate_model_dir(self.path, what=f"judge {self.id}: folder")
            tok_cfg = self.path / "tokenizer_config.json"
            has_template = (self.path / "chat_template.jinja").is_file() or (
                tok_cfg.is_file() and bool(read_json_object(tok_cfg, f"judge {self.id}").get("chat_template")))
        except ModelError as e:
            raise JudgeError(str(e)) from None
        if not has_template:
            raise ConfigError(f"{self.id} has no chat template (chat_template.jinja or tokenizer_config.json); "
                              "the hf judge needs a chat (instruct) model")
        from transformers import AutoConfig

        try:
            AutoConfig.from_pretrained(str(self.path))
        except (OSError, ValueError, KeyError) as e:
            raise JudgeError(f"{self.id}: config.json does not load: {e}") from None

    @property
    def cache_params(self) -> dict:
        """What changes verdicts besides the path: threshold, decoding, templates."""
        extra = {"engine": "vllm"} if self.engine_choice != "hf" else {}  # vLLM's kernels can move a close call
        return {"threshold": self.threshold, "max_new_tokens": self.max_new_tokens, "dtype": self.dtype,
                "templates": self.prompts.sha, "greedy": True, **extra}

    def _load(self):
        with self._lock:
            if self._model is None:
                import torch
                from transformers import AutoModelForCausalLM, AutoTokenizer

                try:
                    tok = AutoTokenizer.from_pretrained(str(self.path))
                    model = AutoModelForCausalLM.from_pretrained(str(self.path), dtype=getattr(torch, self.dtype))
                except (OSError, ValueError) as e:
                    raise JudgeError(f"{self.id}: cannot load the model: {e}") from e
                if not getattr(tok, "chat_template", None):
                    raise ConfigError(f"{self.id} has no chat template; the hf judge needs a chat (instruct) model")
                if tok.pad_token is None:
                    tok.pad_token = tok.eos_token
                dev = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
                model.to(dev).eval()
                self._model, self._tok = model, tok
                self._engine = self._start_engine()
        return self._model, self._tok

    def _start_engine(self):
        """The vLLM engine for the judge's folder (shared with a ChatModel of the same folder), or None."""
        from ..engines import vllm_missing

        if self.engine_choice == "hf":
            return None
        missing = vllm_missing()
        if missing and self.engine_choice == "vllm":
            raise ConfigError(f"{self.id} engine=vllm: {missing}; allowed here: hf, auto")
        if missing:
            print(f"judge {self.id}: engine auto: hf ({missing})")
            return None
        from ..engines.vllm_engine import engine_for_folder

        try:
            return engine_for_folder(self.path, dtype=self.dtype)
        except Exception as e:  # noqa: BLE001 -- auto falls back on whatever stops vLLM starting
            if self.engine_choice == "vllm":
                raise JudgeError(f"{self.id}: the vLLM engine could not start: {type(e).__name__}: {e}") from e
            print(f"judge {self.id}: engine auto: hf (vllm failed to start: {type(e).__name__}: {str(e)[:200]})")
            return None

    @property
    def engine(self) -> str:
        """The engine that serves the judge: ``vllm`` or ``hf`` (known once the model is loaded)."""
        return "vllm" if self._engine is not None else "hf"

    def _prompts(self, conversations: list[list[dict]]) -> list[str]:
        _, tok = self._load()
        return [tok.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in conversations]

    def _label_tokens(self, labels: Sequence[str]) -> list[list[int]]:
        """Single-token ids of each label's spellings; labels sharing a first token are an error."""
        _, tok = self._load()
        out: list[list[int]] = []
        for lab in labels:
            ids: set[int] = set()
            for v in {lab, lab.lower(), lab.upper(), lab.capitalize()}:
                for s in (v, " " + v):
                    enc = tok.encode(s, add_special_tokens=False)
                    if len(enc) == 1:
                        ids.add(enc[0])
            if not ids:
                enc = tok.encode(lab, add_special_tokens=False)
                ids.add(enc[0])  # multi-token label: its first token stands for it
            out.append(sorted(ids))
        seen: dict[int, str] = {}
        for lab, ids in zip(labels, out):
            for i in ids:
                if i in seen:
                    raise ConfigError(f"{self.id}: labels {seen[i]!r} and {lab!r} share token {i}")
                seen[i] = lab
        return out

    def _choose(self, conversations: list[list[dict]], labels: Sequence[str]) -> list[Verdict]:
        label_ids = self._label_tokens(labels)
        prompts = self._prompts(conversations)
        out: list[Verdict] = []
        for masses in self._label_masses(prompts, label_ids):
            for mass in masses:
                total = sum(mass)
                raw = " ".join(f"{lab}={m:.3f}" for lab, m in zip(labels, mass))
                if total < self.threshold or not math.isfinite(total):
                    out.append(Verdict("unparsed", raw=raw, detail=f"no answer: mass {total:.3f} on valid labels "
                                                                    f"< threshold {self.threshold}"))
                    continue
                k = max(range(len(labels)), key=lambda j: mass[j])
                out.append(Verdict("scored", label=labels[k], raw=raw, confidence=round(mass[k] / total, 4),
                                   detail=f"mass {total:.3f} on valid labels"))
        self.stats.calls += len(out)
        return out

    def _label_masses(self, prompts: list[str], label_ids: list[list[int]]):
        """Per batch of prompts: the probability mass on each label's token ids at the next position."""
        import torch

        model, tok = self._load()
        if self._engine is not None:
            ids = [tok(p, add_special_tokens=False)["input_ids"] for p in prompts]
            flat = sorted({t for lab in label_ids for t in lab})
            lps = self._engine.next_logprobs(ids, [flat] * len(ids))
            yield [[sum(math.exp(lp[t]) for t in lab) for lab in label_ids] for lp in lps]
            return
        for i in range(0, len(prompts), self.batch_size):
            enc = tok(prompts[i:i + self.batch_size], return_tensors="pt", padding=True, padding_side="left",
                      add_special_tokens=False).to(model.device)
            # Left padding: positions must count real tokens only, or padded rows are shifted.
            pos = (enc["attention_mask"].cumsum(-1) - 1).clamp(min=0)
            with torch.no_grad():
                logits = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"],
                               position_ids=pos).logits[:, -1, :].float()
            probs = torch.softmax(logits, dim=-1)
            yield [[float(row[ids].sum()) for ids in label_ids] for row in probs]

    def judge_propositions(self, queries: Sequence[PropositionQuery]) -> list[Verdict]:
        """A/B/C/D by label probability after the ``mask_binary`` prompt."""
        return self._choose([self.prompts.proposition_messages(q) for q in queries], BINARY_LABELS)

    def judge_consistency(self, queries: Sequence[ConsistencyQuery]) -> list[Verdict]:
        """yes/no by label probability after the ``consistency`` prompt."""
        return self._choose([self.prompts.consistency_messages(q) for q in queries], YES_NO)

    def judge_numeric(self, queries: Sequence[NumericQuery]) -> list[Verdict]:
        """Greedy generation after the ``mask_numeric`` prompt, parsed as strict JSON bounds."""
        if not queries:
            return []
        prompts = self._prompts([self.prompts.numeric_messages(q) for q in queries])
        out: list[Verdict] = []
        for text in self._greedy(prompts):
            b = parse_ranges(text)
            if b is None:
                out.append(Verdict("unparsed", raw=text, detail='expected {"lower": number|null, "upper": number|null}'))
            else:
                out.append(Verdict("scored", lower=b[0], upper=b[1], rel_lower=b[2], rel_upper=b[3], raw=text))
        self.stats.calls += len(out)
        return out

    def _greedy(self, prompts: list[str]) -> list[str]:
        """Greedy replies of up to ``max_new_tokens`` to the rendered ``prompts`` (vLLM or transformers)."""
        import torch

        model, tok = self._load()
        if self._engine is not None:
            got = self._engine.generate_ids([tok(p, add_special_tokens=False)["input_ids"] for p in prompts],
                                            self.max_new_tokens)
            return [tok.decode(ids, skip_special_tokens=True).strip() for ids, _ in got]
        texts: list[str] = []
        for i in range(0, len(prompts), self.batch_size):
            enc = tok(prompts[i:i + self.batch_size], return_tensors="pt", padding=True, padding_side="left",
                      add_special_tokens=False).to(model.device)
            with torch.no_grad():
                gen = model.generate(**enc, max_new_tokens=self.max_new_tokens, do_sample=False,
                                     pad_token_id=tok.pad_token_id)
            texts += [tok.decode(row, skip_special_tokens=True).strip() for row in gen[:, enc["input_ids"].shape[1]:]]
        return texts

    def close(self) -> None:
        """Drop the model so its memory can be freed."""
        self._model = self._tok = None

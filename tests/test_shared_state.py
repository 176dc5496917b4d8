"""No hidden process-wide state: the embedding model is loaded once and changes no environment
variable; generation pads on the left without changing the shared tokenizer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

PROBE = """
import json, os
import sentence_transformers, torch, transformers  # libraries may set their own variables on import
from emd.interaction.rating import RatingRule, embedder
from emd.judges import PropositionQuery, get_judge
from emd.judges import embed
before = dict(os.environ)
judge = get_judge("embed:minilm", cache=False)
v = judge.judge_propositions([PropositionQuery("The sky is blue.", "The sky is not blue.", "The sky is blue.")])
rule = RatingRule()
rule.signals([], [])
same = rule.model is embedder() is judge.backend._encoder() is embed.shared_encoder("cpu")
print(json.dumps({"label": v[0].label, "same": same, "loaded": len(embed._ENCODERS),
                  "env_changed": sorted(k for k in set(before) | set(os.environ) if before.get(k) != os.environ.get(k))}))
"""


def test_minilm_is_loaded_once_and_changes_no_environment():
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env["PYTHONPATH"] = str(REPO)
    r = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out == {"label": "A", "same": True, "loaded": 1, "env_changed": []}


@pytest.mark.slow
def test_generate_pads_left_without_mutating_the_tokenizer(embedded_model):
    tok = embedded_model.tokenizer
    old = tok.padding_side
    tok.padding_side = "right"  # what another user of the shared tokenizer (training) may have set
    try:
        short = [{"role": "user", "content": "Name a colour."}]
        long = [{"role": "user", "content": "Please describe, in one short sentence, what a lighthouse does at night."}]
        alone = embedded_model.generate([short], max_new_tokens=8)
        batched = embedded_model.generate([short, long], max_new_tokens=8, batch_size=2)
        assert batched[0] == alone[0]  # right padding would have fed pad tokens before the reply
        assert tok.padding_side == "right"
    finally:
        tok.padding_side = old

"""A registered version is an MLflow Model: mlflow.pyfunc.load_model("models:/<name>@<alias>") in a fresh
process loads base model + adapter and generates what emd generates with that adapter attached."""

import json
import os
import subprocess
import sys
from pathlib import Path

from mlflow.tracking import MlflowClient

REPO = Path(__file__).resolve().parent.parent
PROMPTS = ["Name a colour.", "What is 3 plus 4?"]

LOAD = """
import json, sys
import mlflow
assert "emd" not in sys.modules
model = mlflow.pyfunc.load_model("models:/emd-smollm2-test@probe")
print("RESULT" + json.dumps(model.predict(json.loads(sys.argv[1]), params={"max_new_tokens": 8})))
"""


def _random_adapter(chat, path: Path) -> Path:
    """A LoRA adapter with non-zero B (peft's init_lora_weights=False), so it changes the outputs."""
    from peft import LoraConfig, get_peft_model

    peft_model = get_peft_model(chat.model, LoraConfig(r=4, lora_alpha=64, target_modules=["q_proj", "v_proj"],
                                                       init_lora_weights=False, task_type="CAUSAL_LM"))
    peft_model.save_pretrained(str(path))
    chat.release_trained(peft_model)
    return path


def test_registered_version_loads_with_pyfunc_in_a_fresh_process(tmp_path, tracking_uri, embedded_model):
    from emd.tracking import Tracker

    adapter = _random_adapter(embedded_model, tmp_path / "adapter")
    convs = [[{"role": "user", "content": p}] for p in PROMPTS]
    with embedded_model.adapter(adapter):
        expected = embedded_model.generate(convs, max_new_tokens=8)
    base = embedded_model.generate(convs, max_new_tokens=8)
    assert expected != base  # the adapter matters, so matching it below means it was applied

    tr = Tracker(tracking_uri)
    with tr.run("emd-test", run_name="probe") as run:
        tr.log_artifacts(adapter, "adapter")
        version = tr.register_adapter(run.info.run_id, "emd-smollm2-test", aliases=["probe"],
                                      tags={"base_model": "embedded:smollm2"})
    mv = MlflowClient(tracking_uri).get_model_version("emd-smollm2-test", version)
    assert mv.source == f"runs:/{run.info.run_id}/model"
    assert mv.tags["base_model"] == "embedded:smollm2"
    assert mv.tags["base_model_revision"].startswith("SmolLM2-135M-Instruct.Q4_1-")  # carries the GGUF digest
    # the adapter folder stays reachable for emd's own loaders
    assert (tr.download("models:/emd-smollm2-test@probe", tmp_path / "dl") / "adapter_config.json").is_file()

    env = {**os.environ, "PYTHONPATH": str(REPO), "MLFLOW_TRACKING_URI": tracking_uri, "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", LOAD, json.dumps(PROMPTS)], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.split("RESULT", 1)[1])
    assert got == expected

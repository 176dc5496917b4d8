"""Cheap checks of model and adapter folders, run before any MLflow run exists or any weights load.

Each check reads only small JSON files and lists folders; a bad input raises
:class:`~emd.errors.ModelError` naming the file, the field or the missing piece and what is allowed.
Exposed through :mod:`emd.models` (``validate_model_uri``, ``validate_model_dir``,
``validate_adapter_dir``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .errors import ModelError

# Any one of these lets AutoTokenizer build a tokenizer (fast JSON, sentencepiece, BPE or WordPiece vocab).
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "spiece.model", "sentencepiece.bpe.model",
                   "vocab.json", "vocab.txt", "tiktoken.model")
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")  # single-file checkpoints
WEIGHT_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")  # sharded ones
ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")


def read_json_object(path: Path, what: str) -> dict:
    """The JSON object in ``path``; ModelError naming the file when it is unreadable or not an object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"{what}: {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ModelError(f"{what}: cannot read {path}: {e}") from None
    except json.JSONDecodeError as e:
        raise ModelError(f"{what}: {path} is not valid JSON ({e.msg} at line {e.lineno}, column {e.colno})") from None
    if not isinstance(data, dict):
        raise ModelError(f"{what}: {path} holds a JSON {type(data).__name__}; expected an object {{...}}")
    return data


def validate_model_dir(path: str | os.PathLike, what: str | None = None) -> dict:
    """Check a local model folder: parseable ``config.json`` with a ``model_type``, tokenizer and weights.

    Returns the parsed config. Sharded checkpoints must have every shard their index names.
    """
    d = Path(path).expanduser()
    what = what or f"model folder {str(path)!r}"
    if not d.is_dir():
        raise ModelError(f"{what} is not a folder (no config.json there); allowed: a local model folder with "
                         "config.json, tokenizer and weights, or a hub id")
    cfg_path = d / "config.json"
    if not cfg_path.is_file():
        raise ModelError(f"{what} has no config.json; pass a folder saved with save_pretrained or a hub id")
    cfg = read_json_object(cfg_path, what)
    if not isinstance(cfg.get("model_type"), str) or not cfg["model_type"]:
        raise ModelError(f"{what}: {cfg_path} has no \"model_type\" string (e.g. \"llama\"); "
                         "transformers cannot tell which architecture it describes")
    missing = []
    if not any((d / f).is_file() for f in TOKENIZER_FILES):
        missing.append(f"tokenizer files (one of {', '.join(TOKENIZER_FILES)})")
    index = next((d / f for f in WEIGHT_INDEXES if (d / f).is_file()), None)
    if index is not None:
        weight_map = read_json_object(index, what).get("weight_map")
        if not isinstance(weight_map, dict) or not weight_map:
            raise ModelError(f"{what}: {index} has no \"weight_map\" object")
        absent = sorted({str(s) for s in weight_map.values() if not (d / str(s)).is_file()})
        if absent:
            missing.append(f"weight shards named in {index.name}: {', '.join(absent[:5])}"
                           + (f" and {len(absent) - 5} more" if len(absent) > 5 else ""))
    elif not any((d / f).is_file() for f in WEIGHT_FILES):
        missing.append(f"weights ({' or '.join(WEIGHT_FILES + WEIGHT_INDEXES)})")
    if missing:
        raise ModelError(f"{what} is incomplete: missing {'; '.join(missing)}")
    return cfg


def _offline() -> bool:
    if os.environ.get("TRANSFORMERS_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        return True
    from huggingface_hub import is_offline_mode

    return bool(is_offline_mode())


def validate_hub_id(repo_id: str) -> None:
    """A hub id that is not a local folder: fine when cached; otherwise the hub must be reachable.

    Offline (``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE``) with nothing cached is an error without any
    network request. Online, one metadata request tells a missing repository from an unreachable hub.
    """
    from huggingface_hub import try_to_load_from_cache

    try:
        cached = try_to_load_from_cache(repo_id, "config.json")
    except Exception as e:  # HFValidationError: not a valid repo id at all
        raise ModelError(f"hf:{repo_id} is neither a local folder nor a valid hub id ({e})") from None
    if isinstance(cached, str):
        return
    if _offline():
        raise ModelError(f"hf:{repo_id} is not a local folder and not in the local Hugging Face cache, and the hub "
                         "is off (HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE); pass a local folder (hf:/path/to/model) "
                         "or download the model first")
    from huggingface_hub import model_info
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    try:
        model_info(repo_id, timeout=10)
    except GatedRepoError:
        return  # exists; loading will ask for a token
    except RepositoryNotFoundError:
        raise ModelError(f"hf:{repo_id}: no such model on the Hugging Face hub (and not a local folder)") from None
    except Exception as e:
        raise ModelError(f"hf:{repo_id} is not a local folder, not in the local Hugging Face cache, and the hub is "
                         f"unreachable ({type(e).__name__}); pass a local folder or set up network access") from None


def _field_error(path: Path, name: str, value: Any, allowed: str) -> ModelError:
    return ModelError(f"adapter config {path}: field {name!r} is {value!r} ({type(value).__name__}); allowed: {allowed}")


def validate_adapter_dir(path: str | os.PathLike) -> dict:
    """Check a LoRA adapter folder and return its parsed ``adapter_config.json``.

    Field types checked: ``r`` integer > 0, ``lora_alpha`` number, ``target_modules`` a list of strings
    or a string (a regex), ``base_model_name_or_path`` a string (or null: unknown base); and a weights
    file (``adapter_model.safetensors`` or ``.bin``) must exist. ModelError names the field.
    """
    d = Path(path).expanduser()
    if not d.is_dir():
        raise ModelError(f"adapter {str(path)!r} is not a folder")
    cfg_path = d / "adapter_config.json"
    if not cfg_path.is_file():
        raise ModelError(f"adapter folder {d} has no adapter_config.json")
    cfg = read_json_object(cfg_path, "adapter config")
    for name in ("r", "lora_alpha", "target_modules"):
        if name not in cfg:
            raise ModelError(f"adapter config {cfg_path}: field {name!r} is missing")
    r, alpha, targets = cfg["r"], cfg["lora_alpha"], cfg["target_modules"]
    if isinstance(r, bool) or not isinstance(r, int) or r <= 0:
        raise _field_error(cfg_path, "r", r, "an integer > 0")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)):
        raise _field_error(cfg_path, "lora_alpha", alpha, "a number")
    if not (isinstance(targets, str) and targets) and not (
            isinstance(targets, list) and targets and all(isinstance(t, str) and t for t in targets)):
        raise _field_error(cfg_path, "target_modules", targets, "a non-empty list of module names or a regex string")
    base = cfg.get("base_model_name_or_path")
    if base is not None and not isinstance(base, str):
        raise _field_error(cfg_path, "base_model_name_or_path", base, "a string (model id or path) or null")
    if not any((d / f).is_file() for f in ADAPTER_WEIGHTS):
        raise ModelError(f"adapter folder {d} has no weights ({' or '.join(ADAPTER_WEIGHTS)})")
    return cfg

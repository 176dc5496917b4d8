"""Flat config keys: one key per leaf of an entry config, the same as YAML key, flag and MLflow param.

Precedence: dataclass defaults < YAML file(s) < command-line flags. YAML may be flat (``lora_r: 8``)
or nested by section (``lora: {r: 8}``); unknown keys fail with a "did you mean". Values are coerced
to the field's type here and validated by the dataclass that declares them (``emd.config``).
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Sequence

import yaml

from .errors import ConfigError

# Flat-key prefix per sub-config section (the LoRA fields read better as lora_r than r).
_PREFIX = {"lora": "lora_"}


# --------------------------------------------------------------------------- flat keys
@dataclass(frozen=True)
class FlatField:
    """One leaf of an entry config: its flat key, path of attribute names, type and help."""

    key: str
    path: tuple[str, ...]
    type: Any
    default: Any
    help: str


def _is_config(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def flat_fields(cls: type) -> dict[str, FlatField]:
    """All leaves of entry config ``cls`` by flat key."""
    out: dict[str, FlatField] = {}
    hints = typing.get_type_hints(cls)
    for f in fields(cls):
        tp = hints[f.name]
        if _is_config(tp):
            sub_default = f.default_factory() if f.default_factory is not dataclasses.MISSING else tp()
            sub_hints = typing.get_type_hints(tp)
            for sf in fields(tp):
                key = _PREFIX.get(f.name, "") + sf.name
                if key in out:
                    raise RuntimeError(f"duplicate config key {key} in {cls.__name__}")
                out[key] = FlatField(key, (f.name, sf.name), sub_hints[sf.name], getattr(sub_default, sf.name),
                                     sf.metadata.get("help", ""))
        else:
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            out[f.name] = FlatField(f.name, (f.name,), tp, default, f.metadata.get("help", ""))
    return out


def _coerce(key: str, value: Any, tp: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        tp = args[0]
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{key}={value!r}; allowed: true or false")
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"{key}={value!r}; allowed: an integer")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        raise ConfigError(f"{key}={value!r} is not an integer; allowed: an integer")
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"{key}={value!r}; allowed: a number")
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{key}={value!r} is not a number; allowed: a number")
    if tp is str:
        if isinstance(value, (list, tuple)):
            return ",".join(str(v) for v in value)
        if isinstance(value, (dict,)):
            raise ConfigError(f"{key}: expected a string, got a mapping")
        return str(value)
    return value


def _unknown(key: str, known: typing.Iterable[str], where: str) -> ConfigError:
    close = difflib.get_close_matches(key, list(known), n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return ConfigError(f"unknown config key {key!r} in {where}{hint} (see `python -m emd <entry> --help`)")


def normalise_yaml(data: Any, cls: type, where: str) -> dict[str, Any]:
    """Flatten a YAML mapping (flat keys or ``section: {field: v}``) into flat keys; unknown keys fail."""
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping of config keys, got {type(data).__name__}")
    flat = flat_fields(cls)
    sections = {f.path[0] for f in flat.values() if len(f.path) == 2}
    out: dict[str, Any] = {}
    for k, v in data.items():
        key = str(k).replace("-", "_")
        if key in flat:
            out[key] = v
        elif key in sections and isinstance(v, dict):
            for sk, sv in v.items():
                fk = _PREFIX.get(key, "") + str(sk).replace("-", "_")
                if fk not in flat or flat[fk].path[0] != key:
                    raise _unknown(f"{key}.{sk}", [f"{key}.{f.path[1]}" for f in flat.values() if f.path[0] == key], where)
                out[fk] = sv
        else:
            raise _unknown(key, list(flat) + sorted(sections), where)
    return out


def load_yaml(path: str | Path) -> Any:
    """Read a YAML config file with a clear error on a missing file or bad syntax."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {path!r} does not exist")
    try:
        return yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {path}: invalid YAML: {e}") from e


def build_config(cls: type, yaml_path: str | Path | None = None, overrides: dict[str, Any] | None = None,
                 yaml_data: dict[str, Any] | None = None, base_yaml: Sequence[str | Path] = ()):
    """Defaults < ``base_yaml`` files (e.g. a sweep's study file) < YAML (file or mapping) < overrides."""
    flat = flat_fields(cls)
    values: dict[str, Any] = {}
    for p in base_yaml:
        values.update(normalise_yaml(load_yaml(p), cls, str(p)))
    if yaml_path:
        values.update(normalise_yaml(load_yaml(yaml_path), cls, str(yaml_path)))
    if yaml_data:
        values.update(normalise_yaml(yaml_data, cls, "config mapping"))
    for k, v in (overrides or {}).items():
        key = k.replace("-", "_")
        if key not in flat:
            raise _unknown(key, flat, "command-line flags")
        values[key] = v
    top: dict[str, Any] = {}
    subs: dict[str, dict[str, Any]] = {}
    for key, v in values.items():
        ff = flat[key]
        cv = _coerce(key, v, ff.type)
        if len(ff.path) == 1:
            top[ff.path[0]] = cv
        else:
            subs.setdefault(ff.path[0], {})[ff.path[1]] = cv
    hints = typing.get_type_hints(cls)
    kwargs = dict(top)
    for f in fields(cls):
        tp = hints[f.name]
        if _is_config(tp):
            base = f.default_factory() if f.default_factory is not dataclasses.MISSING else tp()
            kwargs[f.name] = dataclasses.replace(base, **subs.get(f.name, {})) if f.name in subs else base
    return cls(**kwargs)


def to_flat_dict(cfg: Any) -> dict[str, Any]:
    """The resolved config as flat key -> value (for MLflow params and config.yaml)."""
    out: dict[str, Any] = {}
    for key, ff in flat_fields(type(cfg)).items():
        obj = cfg
        for p in ff.path:
            obj = getattr(obj, p)
        out[key] = obj
    return out


def to_yaml(cfg: Any) -> str:
    """The resolved config as YAML (loadable back with ``--config``)."""
    return yaml.safe_dump(to_flat_dict(cfg), sort_keys=True)


def replace_flat(cfg: Any, **changes: Any):
    """A copy of ``cfg`` with flat keys changed (validated again)."""
    return build_config(type(cfg), overrides={**to_flat_dict(cfg), **changes})

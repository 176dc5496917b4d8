"""Command line: ``python -m emd <entry> [--config f.yaml] [--key value ...]``.

Entries: mixture, direct, interaction, sweep, evaluate, direction, audit (each ``main(cfg) -> result``), plus the tools
``judge-check`` and ``report``. Every config key is a flag (``--n-train 64``; ``--n_train`` works too,
which is how ``mlflow run -P`` passes parameters MLproject does not declare). An empty value
(``--ratio ""``) means "not given": MLproject declares its parameters with empty defaults so that a
YAML file is not overridden by defaults.

Examples::

    python -m emd mixture --ratio 0.05 --n-train 64 --seed 0
    python -m emd mixture --config run.yaml --max-steps 4
    python -m emd evaluate --model embedded:smollm2 --benchmarks mask --limit 20
    python -m emd judge-check --judge embed:minilm
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Any, Sequence

from .config import ENTRY_CONFIGS, build_config, flat_fields
from .errors import EmdError

ENTRY_MODULES = {
    "mixture": "emd.mixture",
    "direct": "emd.direct",
    "interaction": "emd.interaction.run",
    "sweep": "emd.sweep",
    "evaluate": "emd.evaluate",
    "direction": "emd.direction",
    "audit": "emd.audit",
}
TOOLS = {"judge-check": "emd.judges.check", "report": "emd.report", "collect": "emd.grid_collect"}


def make_parser(entry: str) -> argparse.ArgumentParser:
    """Parser for one entry: ``--config`` plus one flag per config key (default None = not given)."""
    cls = ENTRY_CONFIGS[entry]
    p = argparse.ArgumentParser(prog=f"emd {entry}", description=(cls.__doc__ or "").strip(),
                                argument_default=None)
    p.add_argument("--config", help="YAML file of config keys (flat, or nested by section)")
    p.add_argument("--print-config", action="store_true", default=False,
                   help="print the resolved config as YAML (every key, protocol values filled in) and exit")
    for key, ff in flat_fields(cls).items():
        flags = [f"--{key.replace('_', '-')}"]
        if "_" in key:
            flags.append(f"--{key}")
        default = ff.default if not isinstance(ff.default, str) else repr(ff.default)
        p.add_argument(*flags, dest=key, metavar=ff.type.__name__ if isinstance(ff.type, type) else "VALUE",
                       help=f"{ff.help} [default: {default}]")
    return p


def parse_config(entry: str, argv: Sequence[str]):
    """argv -> frozen entry config (defaults < --config YAML < flags)."""
    if entry not in ENTRY_CONFIGS:
        raise EmdError(f"unknown entry {entry!r}; allowed: {', '.join(ENTRY_CONFIGS)}")
    p = make_parser(entry)
    ns, unknown = p.parse_known_args(list(argv))
    if unknown:
        import difflib

        flags = [f"--{k.replace('_', '-')}" for k in flat_fields(ENTRY_CONFIGS[entry])]
        bad = unknown[0]
        close = difflib.get_close_matches(bad.split("=")[0], flags, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise EmdError(f"unknown flag {bad!r} for `emd {entry}`{hint} (see `python -m emd {entry} --help`)")
    values = {k: v for k, v in vars(ns).items() if k not in ("config", "print_config") and v is not None and v != ""}
    base_yaml: list[str] = []
    if entry == "sweep":
        # A study file is a YAML layer of its own: defaults < study < --config < flags.
        study = values.get("study")
        if study is None and ns.config:
            from .config import load_yaml

            study = (load_yaml(ns.config) or {}).get("study") if isinstance(load_yaml(ns.config), dict) else None
        if study:
            base_yaml.append(study)
    return build_config(ENTRY_CONFIGS[entry], yaml_path=ns.config or None, overrides=values, base_yaml=base_yaml)


def run_entry(entry: str, argv: Sequence[str]) -> Any:
    """Parse and run one entry; returns its result (``--print-config``: print the resolved config, run nothing)."""
    cfg = parse_config(entry, argv)
    if "--print-config" in argv:
        from .config import to_yaml

        print(to_yaml(cfg), end="")
        return None
    from . import distributed

    if distributed.world_size() > 1 and not distributed.is_main():
        return _rank_worker(cfg)
    mod = importlib.import_module(ENTRY_MODULES[entry])
    try:
        return mod.main(cfg)
    finally:
        distributed.stop_workers()


def _rank_worker(cfg) -> int:
    """A non-zero rank under ``accelerate launch``: join rank 0's trainings (no tracking, no evaluation)."""
    from . import distributed
    from .models import load_model
    from .pipeline import cleanup, train_worker_message, workdir

    def load():
        m = cfg.model
        return load_model(m.model, dtype=m.dtype, template_kwargs=m.template_kwargs, spec=m)

    work = workdir()
    try:
        return distributed.worker(load, lambda chat, msg: train_worker_message(chat, msg, work))
    finally:
        cleanup(work)


def _terminate_as_exception() -> None:
    """Turn SIGTERM (timeout, job schedulers, `mlflow run` cancellation) into SystemExit, so open MLflow
    runs are closed as KILLED and temporary folders are cleaned instead of left RUNNING."""
    import signal

    def handler(signum, frame):
        raise SystemExit(128 + signum)

    try:
        signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (e.g. called from a test runner thread)
        pass


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point; bad input exits 2 with a one-line error, no traceback."""
    from_shell = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    names = list(ENTRY_MODULES) + list(TOOLS)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        print("entries:", ", ".join(names))
        return 0
    entry, rest = argv[0], argv[1:]
    if from_shell:  # a process of its own: an in-process caller (a test, a notebook) keeps its own handlers
        _terminate_as_exception()
    try:
        if entry in TOOLS:
            return int(importlib.import_module(TOOLS[entry]).main(rest) or 0)
        if entry not in ENTRY_MODULES:
            import difflib

            close = difflib.get_close_matches(entry, names, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise EmdError(f"unknown entry {entry!r}{hint}; allowed: {', '.join(names)}")
        run_entry(entry, rest)
        return 0
    except EmdError as e:
        print(f"emd: error: {e}", file=sys.stderr)
        return getattr(e, "exit_code", 2)

"""Build hook: ship the repository's ``evaluation/`` folder inside the wheel as ``emd/_evaluation/``.

All metadata lives in pyproject.toml; this file only adds the copy step. ``evaluation/`` stays at the
repository root as the home of what emd measures; :mod:`emd.resources` finds the shipped copy in an
installed emd and the root folder in a checkout or an editable install.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
SOURCE = ROOT / "evaluation"
TARGET = ("emd", "_evaluation")  # keep in sync with emd.resources.SHIPPED_NAME
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".*")


class BuildPyWithEvaluation(build_py):
    """``build_py`` that also copies ``evaluation/`` to ``<build_lib>/emd/_evaluation``."""

    def _evaluation_files(self) -> list[tuple[Path, Path]]:
        if not (SOURCE / "mask" / "VERSION").is_file():
            raise FileNotFoundError(f"{SOURCE} does not hold emd's evaluation data (mask/VERSION missing); "
                                    "build from a checkout or an sdist that includes evaluation/")
        out = Path(self.build_lib).joinpath(*TARGET)
        files = [p for p in sorted(SOURCE.rglob("*")) if p.is_file()
                 and not any(part == "__pycache__" or part.startswith(".") for part in p.relative_to(SOURCE).parts)
                 and p.suffix != ".pyc"]
        return [(p, out / p.relative_to(SOURCE)) for p in files]

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads the checkout's evaluation/ directly (emd.resources)
        out = Path(self.build_lib).joinpath(*TARGET)
        if out.exists():
            shutil.rmtree(out)  # a stale copy must not keep files deleted from evaluation/
        for src, dst in self._evaluation_files():
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        outputs = super().get_outputs(include_bytecode)
        if getattr(self, "editable_mode", False):
            return outputs
        return outputs + [str(dst) for _, dst in self._evaluation_files()]


setup(cmdclass={"build_py": BuildPyWithEvaluation})

"""emd: measure how language models learn to deceive unintentionally.

Entry points live in :mod:`emd.cli`; run ``python -m emd --help``.
"""

__version__ = "0.1.0"

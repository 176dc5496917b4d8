"""References shared through the MLflow tracking server, so a second machine reuses what the first computed.

A reference entry (the sealed folder :mod:`emd.references` writes: ``result.json``, ``content.json``,
the control adapter) is published as one run of the ``emd-references`` experiment, tagged
``emd.ref_kind`` and ``emd.ref_key`` (its content key), with the folder as the run's ``entry/``
artifacts. A local-cache miss looks the key up there, downloads the entry into the local cache and
verifies its seal like any cached entry, so the local cache stays the single-machine default and a
read-through layer. Used only when the tracking URI is an ``http(s)://`` server (a local store is
one machine's anyway).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

EXPERIMENT = "emd-references"


class SharedReferences:
    """Reference entries in one tracking server (see the module doc)."""

    def __init__(self, tracker):
        self.tracker = tracker

    def fetch(self, kind: str, key: str, dest: Path) -> bool:
        """Download the published entry of ``kind``/``key`` into ``dest`` (atomically); False if none."""
        from .storage import atomic_dir

        df = self.tracker.search_runs(EXPERIMENT, filter_string=f"tags.`emd.ref_key` = '{key}' and "
                                                                f"tags.`emd.ref_kind` = '{kind}' and "
                                                                "attributes.status = 'FINISHED'",
                                      order_by=["attributes.start_time ASC"])
        if df.empty:
            return False
        run_id = df.iloc[0]["run_id"]
        with tempfile.TemporaryDirectory(prefix="emd-ref-") as tmp:
            got = self.tracker.download(f"runs:/{run_id}/entry", tmp)
            with atomic_dir(dest) as out:
                shutil.copytree(got, out, dirs_exist_ok=True)
        log.info("%s reference %s fetched from run %s of %s", kind, key[:24], run_id, self.tracker.uri)
        return True

    def publish(self, kind: str, key: str, folder: Path) -> str:
        """Publish a sealed local entry as a FINISHED run of ``emd-references``; returns its run id."""
        return self.tracker.publish_folder(EXPERIMENT, f"{kind}-{key[:24]}", folder, "entry",
                                           tags={"emd.ref_kind": kind, "emd.ref_key": key, "emd.entry": "reference"})


def for_tracker(tracker) -> SharedReferences | None:
    """The shared layer for a tracker talking to a server over HTTP; None for a local store."""
    return SharedReferences(tracker) if tracker.uri.startswith(("http://", "https://")) else None

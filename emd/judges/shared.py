"""Judge verdicts shared through the MLflow tracking server (``--share-verdicts true``).

An API judge's answers cost money and minutes; machines of one team judging the same responses (a
rerun on another node, a reference evaluated twice before either was published) should ask once.
With sharing on, each run publishes the verdicts it asked for (none it read from a cache) as one
``verdicts/verdicts.jsonl`` artifact of a FINISHED run of the ``emd-judge-verdicts`` experiment, tagged with
the judge's id and version; before judging, a run imports every such file of its judge id and version
it has not imported yet into its local cache (:class:`emd.judges.cache.JudgeCache`), which stays the
single-machine default and the read-through layer. Rows keep their cache key (sha256 of the judge,
version, query and backend parameters), so an imported verdict answers exactly the query it answered
before; like the local cache, only ``scored`` and ``refused`` verdicts travel.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

EXPERIMENT = "emd-judge-verdicts"
FOLDER, FILE = "verdicts", "verdicts.jsonl"


class SharedVerdicts:
    """Verdict files of one judge (id, version) in one tracking server, synced with one local cache."""

    def __init__(self, tracker, judge_id: str, version: str, cache):
        self.tracker, self.judge_id, self.version, self.cache = tracker, judge_id, version, cache
        self._pushed = 0  # cache.new_rows already published

    def _filter(self) -> str:
        return (f"tags.`emd.judge` = '{self.judge_id}' and tags.`emd.judge_version` = '{self.version}' and "
                "attributes.status = 'FINISHED'")

    def pull(self) -> int:
        """Import the published verdict files the cache has not imported yet; returns the rows added."""
        df = self.tracker.search_runs(EXPERIMENT, filter_string=self._filter(), order_by=["attributes.start_time ASC"])
        added = 0
        for run_id in ([] if df.empty else list(df["run_id"])):
            if self.cache.imported(run_id):
                continue
            with tempfile.TemporaryDirectory(prefix="emd-verdicts-") as tmp:
                path = self.tracker.download(f"runs:/{run_id}/{FOLDER}/{FILE}", tmp)
                rows = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
            added += self.cache.import_rows([(r["key"], r["judge"], r["kind"], r["verdict"]) for r in rows], run_id)
        if added:
            log.info("judge %s: %d shared verdicts imported from %s", self.judge_id, added, self.tracker.uri)
        return added

    def push(self, label: str) -> str | None:
        """Publish the verdicts asked since the last push as one FINISHED run; returns its id (None: none)."""
        rows = self.cache.new_rows[self._pushed:]
        if not rows:
            return None
        with tempfile.TemporaryDirectory(prefix="emd-verdicts-") as tmp:
            folder = Path(tmp) / "v"
            folder.mkdir()
            (folder / FILE).write_text("".join(json.dumps({"key": k, "judge": j, "kind": kind, "verdict": v}) + "\n"
                                               for k, j, kind, v in rows))
            run_id = self.tracker.publish_folder(
                EXPERIMENT, f"{label}-{socket.gethostname()}-{os.getpid()}", folder, FOLDER,
                tags={"emd.judge": self.judge_id, "emd.judge_version": self.version, "emd.n_verdicts": str(len(rows)),
                      "emd.entry": "judge-verdicts"})
        self._pushed += len(rows)
        self.cache.imported_here(run_id)  # its rows are this cache's own: never imported back
        return run_id


def for_judge(judge, tracker) -> SharedVerdicts | None:
    """The shared layer of a run's judge (None for a judge without a cache: nothing to read through)."""
    cache = getattr(judge, "cache", None)
    return None if cache is None else SharedVerdicts(tracker, judge.id, judge.version, cache)

"""One METS a folder (``mets_per_folder: true``): a folder's files as one object.

Why: a volume is often scanned one image a page into a folder of its own; Goobi, Kitodo and
the DFG-Viewer want one METS for it, its pages one physical sequence, not one METS a page.
After the files of a run are written, every folder with a file whose outputs were written in
this run, and every folder of done files that has no folder METS yet (the option just turned
on), gets ``folder.mets.xml`` from its files' ``.json`` and outputs: no API call. Only the
folder's own files belong to it; each subfolder is an object of its own.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pipeline.formats.writer import FOLDER_METS, write_folder_mets_sync


async def write_folder_mets(ctx: Any) -> int:
    """Write the folder METS documents the run calls for; returns how many were written."""
    config = ctx.config
    if not config.mets_per_folder:
        return 0
    by_folder: dict[str, list[str]] = {}
    for rec in ctx.state.iter_files(("done",)):
        by_folder.setdefault(rec.rel.rpartition("/")[0], []).append(rec.rel)
    written = 0
    for folder, rels in sorted(by_folder.items()):
        if folder not in ctx.mets_folders and (config.output / folder / FOLDER_METS).exists():
            continue
        try:
            if await asyncio.to_thread(write_folder_mets_sync, config.output, config.input, folder, rels):
                written += 1
        except OSError as exc:
            ctx.output_notes.append({"path": folder or ".", "note": f"folder METS not written: {exc}"})
    return written

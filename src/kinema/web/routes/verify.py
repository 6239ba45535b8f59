"""POST /api/verify: the authenticity report of any uploaded media file (what `kinema
verify` prints: manifest, watermark, triage score, review decision and verdict), typed by
its content and read from a private scratch file."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, UploadFile

from kinema.errors import InputError
from kinema.web.context import Context
from kinema.web.media import Scratch, label, media_suffix, read_upload

__all__ = ["router"]

router = APIRouter()


@router.post("/api/verify")
def verify(ctx: Context, file: Annotated[UploadFile, File()]) -> dict[str, Any]:
    """The authenticity report of an uploaded media file (the JSON of `kinema verify`):
    C2PA state, watermark, triage score, review decision and a one-line verdict. Who
    decided a review item and their note stay out: any token holding the file may ask."""
    from kinema.authenticity import report as authenticity_report

    data = read_upload(file, ctx.limits.upload_bytes)
    suffix = media_suffix(data[:64])
    if suffix is None:
        raise InputError("not a media file kinema reads (mp4, mov, webm, mkv, gif, png, jpeg, webp, wav)")
    with Scratch(ctx.home, data, suffix) as path:
        report = authenticity_report(path, show_reviewer=False)
    report["file"] = label(file.filename or "upload")
    return report

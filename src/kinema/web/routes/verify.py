"""POST /api/verify: the provenance of any uploaded media file (what `kinema verify`
prints), typed by its content and read from a private scratch file."""

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
    """Provenance of an uploaded media file: C2PA state and watermark (the JSON of
    `kinema verify`)."""
    from kinema.provenance.verify import verify_file

    data = read_upload(file, ctx.limits.upload_bytes)
    suffix = media_suffix(data[:64])
    if suffix is None:
        raise InputError("not a media file kinema reads (mp4, mov, webm, mkv, gif, png, jpeg, webp, wav)")
    with Scratch(ctx.home, data, suffix) as path:
        report = verify_file(path)
    report["file"] = label(file.filename or "upload")
    return report

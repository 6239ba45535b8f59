"""POST /api/uploads: images (first or last frames, inpaint masks) and clips of the
user's own to edit, checked by decoding them, stored under names the queue makes."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, HTTPException, UploadFile

from kinema.errors import InputError
from kinema.web.context import Caller, Context, WebContext
from kinema.web.media import MAX_SIDE, Scratch, check_declared_size, label, media_suffix, read_upload
from kinema.web.tokens import Token

__all__ = ["router"]

router = APIRouter()


@router.post("/api/uploads", status_code=201)
def upload(ctx: Context, caller: Caller, file: Annotated[UploadFile, File()]) -> dict[str, Any]:
    """Upload an image (PNG, JPEG, GIF or WebP; checked by decoding it): a first or last
    image (i2v, keyframes) or an inpaint mask (PNG); an mp4 or webm clip of your own
    to edit (`source_clip` of extend, remix, inpaint, outpaint) or to follow
    (`control_clip`); or a motion path, JSON {"points": [[frame, x, y], ...]} (`path`; the
    studio's motion brush sends one). Returns its id and kind. Images and clips showing a
    face need a consent record."""
    from kinema.governance.policy import check_likeness
    from kinema.io import read_image

    limits = ctx.limits
    data = read_upload(file, limits.upload_bytes)
    suffix = media_suffix(data[:64])
    if suffix in (".mp4", ".webm"):
        return _clip_upload(ctx, caller, file, data, suffix)
    if suffix is None and data.lstrip()[:1] == b"{":
        return _path_upload(ctx, caller, data)
    if suffix not in (".png", ".jpg", ".gif", ".webp"):
        raise InputError(
            "the upload is not a PNG, JPEG, GIF or WebP image, an mp4 or webm clip, "
            "nor a motion path (JSON) (judged by its content)"
        )
    if len(data) > limits.image_bytes:
        raise HTTPException(413, f"an image upload is at most {limits.image_bytes} bytes")
    check_declared_size(data, suffix)  # before decoding: a small file may claim a huge image
    with Scratch(ctx.home, data, suffix) as path:
        pixels = read_image(path)
        h, w = pixels.shape[:2]
        if max(w, h) > MAX_SIDE:
            raise InputError(f"the image is {w}x{h}; at most {MAX_SIDE} pixels a side")
        check_likeness(pixels, source=file.filename and label(file.filename))
    input_id = ctx.queue.save_input(caller.id, data, suffix)
    return {"id": input_id, "kind": "image", "width": w, "height": h}


def _clip_upload(
    ctx: WebContext, caller: Token, file: UploadFile, data: bytes, suffix: str
) -> dict[str, Any]:
    """A clip of the user's own to edit (extend, remix, inpaint, outpaint): its stream's
    declared size is checked before any frame is decoded, then at most the frame limit
    is decoded, and every frame is checked for faces without consent."""
    from kinema.governance.policy import check_likeness
    from kinema.io import read_video
    from kinema.io.video import video_header

    limits = ctx.limits
    with Scratch(ctx.home, data, suffix) as path:
        w, h, _ = video_header(path)  # before decoding: a small file may declare a huge frame
        if max(w, h) > limits.side:
            raise InputError(f"the clip is {w}x{h}; at most {limits.side} pixels a side")
        video = read_video(path, max_frames=limits.frames + 1)
        if video.num_frames > limits.frames:
            raise InputError(f"the clip has more than {limits.frames} frames; at most {limits.frames}")
        check_likeness(video.frames, source=file.filename and label(file.filename))
    facts = {"width": video.width, "height": video.height, "frames": video.num_frames, "fps": video.fps}
    # kept with the file: a webm records no frame count, and every edit request needs it
    input_id = ctx.queue.save_input(caller.id, data, suffix, facts=facts)
    return {"id": input_id, "kind": "clip", **facts}


def _path_upload(ctx: WebContext, caller: Token, data: bytes) -> dict[str, Any]:
    """A motion path: read by the rules every door uses (kinema.pipelines.motion_track)."""
    from kinema.pipelines.motion_track import MAX_PATH_POINTS, parse_path

    if len(data) > 64 * MAX_PATH_POINTS:
        raise HTTPException(413, f"a motion path upload is at most {64 * MAX_PATH_POINTS} bytes")
    points = parse_path(data, "upload")
    input_id = ctx.queue.save_input(caller.id, data, ".json", facts={"last_frame": points[-1][0]})
    return {"id": input_id, "kind": "path", "points": len(points), "last_frame": points[-1][0]}

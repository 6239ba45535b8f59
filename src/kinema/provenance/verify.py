"""`kinema verify`: what a media file says about where it came from.

`verify_file` answers every media file (mp4, webm, gif, png, a folder of PNG frames, any
other container PyAV can decode) with one JSON-ready dict and never raises for one:

    {"file": ..., "media": {kind, width, height, fps, frames_checked, has_audio,
                            damaged, decode_error},
     "c2pa": {"state": "Trusted|Valid|Invalid|Absent", "reason": ..., "codes": [...],
              "source": "embedded|sidecar|None", "claims": {...} | None,
              "ingredients": [...]},
     "watermark": {"detected": bool, "payload_valid": bool, "payload": "<hex>" | None,
                   "payload_bits": 32 | 64, "version": 4 | 3 | 2, "algorithm": ...,
                   "score": float, "checked": bool, "matches_manifest": bool | None, ...},
     "summary": "<one sentence>"}

The trust anchor is the local root certificate under KINEMA_HOME/keys; without local
keys a good manifest is at best Valid. The watermark key is derived from the local
signing key (`keys.watermark_key`); without local keys the watermark is not looked for
(checked false, reason "no local keys"), and no keys are created. Only the first ~2
seconds of a clip are decoded for the watermark (it is decodable from any one second).
A detected mark whose payload fails its integrity check (a heavily attacked clip) is
reported as found with payload_valid false and payload None ("payload unreadable"); its
match with the manifest's soft binding is then unknown (None), not false. A mark on frames
under 96 px a side carries the first 32 bits of the payload (`payload_bits`), which match
the manifest's soft binding when they are its first 32 bits. Marks made before v4 are
still read (`version` 3 or 2). A white background brightened until it clips (×1.2 sets every
pixel above 212 to 255) keeps no mark in those pixels: such a file reports no watermark
found, or a watermark found with its payload unreadable, never a wrong payload.

A path that does not exist, is not media, or cannot be decoded at all raises VerifyError
(an InputError: the CLI exits 2). A damaged file that still decodes some frames (a
truncated mp4, say) is media: the frames before the damage are checked for the watermark
(media.damaged is true, with the decoder's error), and its manifest comes back Invalid or
Absent with the reason.

Not yet: "audio_watermark" is left out until the voice work adds an audio detector;
`media.has_audio` already says whether the file carries audio.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import av
import numpy as np

from kinema.errors import InputError
from kinema.io import Audio, Video, VideoError, read_audio, read_video
from kinema.provenance import watermark
from kinema.provenance.audio_watermark import verify_audio
from kinema.provenance.c2pa import read_manifest
from kinema.provenance.keys import ProvenanceError, key_paths, watermark_key
from kinema.state import kinema_home

__all__ = ["WATERMARK_SECONDS", "VerifyError", "verify_file"]

WATERMARK_SECONDS = 2.0
AUDIO_SECONDS = 6.0  # the audio watermark decodes from any 3 s; 6 s leave room for a cut start
MAX_FRAMES = 64  # decode at most this many frames, whatever the rate


class VerifyError(InputError):
    """The path is not media kinema can decode; the message is one line."""


def verify_file(path: str | os.PathLike) -> dict[str, Any]:
    """Check PATH's C2PA manifest and invisible watermark; returns the report dict above.

    Raises VerifyError when PATH does not exist or is not decodable media.
    """
    target = Path(os.fspath(path))
    if not target.exists():
        raise VerifyError(f"'{target}' does not exist")
    audio = _audio(target)
    try:
        video, damage = _decode(target)
    except VerifyError:
        if audio is None:
            raise
        video, damage = None, None  # an audio-only file (narration .wav, say)
    home = kinema_home()
    keys = key_paths(home)
    have_keys = keys.exist()
    c2pa = _manifest(target, keys.root_cert if have_keys else None)
    mark = _watermark(video, home, have_keys, keys.folder) if video is not None else _not_checked("no video")
    binding = ((c2pa.get("claims") or {}).get("soft_binding") or {}).get("payload_hex")
    if mark.get("detected") and mark.get("payload_valid") and binding:
        # a mark on a small frame carries the soft binding's first 32 bits
        found = mark.get("payload") or ""
        mark["matches_manifest"] = len(found) >= 8 and binding.lower().startswith(found)
    else:
        mark["matches_manifest"] = None
    report = {
        "file": str(target),
        "media": _media(target, video, damage) if video is not None else _audio_media(target, audio),
        "c2pa": c2pa,
        "watermark": mark,
    }
    if audio is not None:
        report["audio_watermark"] = verify_audio(audio, home)
    report["summary"] = _summary(c2pa, mark, report.get("audio_watermark"))
    return _finite(report)


def _audio(path: Path) -> Audio | None:
    """The first seconds of a file's audio (enough for the audio watermark), or None."""
    if path.is_dir():
        return None
    try:
        return read_audio(path, max_seconds=AUDIO_SECONDS)
    except VideoError:
        return None


def _audio_media(path: Path, audio: Audio) -> dict[str, Any]:
    return {
        "kind": path.suffix.lower().lstrip(".") or "unknown",
        "has_audio": True,
        "has_video": False,
        "audio_rate": audio.rate,
        "seconds_checked": round(audio.seconds, 3),
        "damaged": False,
        "decode_error": None,
    }


# ----------------------------------------------------------------------------- parts


def _decode(path: Path) -> tuple[Video, str | None]:
    """The first ~2 seconds of PATH's frames, and the decode error that cut them short
    (None when the file decoded cleanly); VerifyError when no frame decodes at all."""
    damage = None
    try:
        video = read_video(path, max_frames=MAX_FRAMES)
    except VideoError as exc:
        video, damage = _decode_partial(path), str(exc)
        if video is None:
            raise VerifyError(f"'{path.name}' is not media kinema can decode: {exc}") from None
    keep = max(1, math.ceil(WATERMARK_SECONDS * video.fps))
    video = video.with_frames(video.frames[:keep]) if video.num_frames > keep else video
    return video, damage


def _decode_partial(path: Path) -> Video | None:
    """The frames of a damaged file (a cut-off mp4, say) up to the first decode error."""
    if path.is_dir():
        return None
    frames: list[np.ndarray] = []
    fps = 8.0
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                return None
            stream = container.streams.video[0]
            fps = float(stream.average_rate or stream.guessed_rate or fps)
            for frame in container.decode(stream):
                frames.append(frame.to_ndarray(format="rgb24"))
                if len(frames) >= MAX_FRAMES:
                    break
    except Exception:  # noqa: BLE001 - keep what decoded before the damage
        pass
    if not frames or any(f.shape != frames[0].shape for f in frames):
        return None
    try:
        return Video(np.stack(frames), fps if 0 < fps <= 1000 else 8.0)
    except VideoError:
        return None


def _manifest(path: Path, trust_root: Path | None) -> dict[str, Any]:
    """The C2PA part; a manifest that cannot be read at all is reported as Invalid."""
    try:
        result = read_manifest(path, trust_root)
    except ProvenanceError as exc:
        return _c2pa_dict("Invalid", f"manifest cannot be read: {exc}")
    except Exception as exc:  # noqa: BLE001 - never crash on a media file
        return _c2pa_dict("Invalid", f"manifest cannot be read: {type(exc).__name__}: {exc}")
    return {
        "state": result["state"],
        "reason": result["reason"],
        "codes": result.get("codes") or [],
        "source": result.get("source"),
        "trust_anchor": str(trust_root) if trust_root else None,
        "claims": result.get("active_manifest"),
        "ingredients": result.get("ingredients") or [],
    }


def _c2pa_dict(state: str, reason: str) -> dict[str, Any]:
    return {
        "state": state,
        "reason": reason,
        "codes": [],
        "source": None,
        "trust_anchor": None,
        "claims": None,
        "ingredients": [],
    }


def _watermark(video: Video, home: Path, have_keys: bool, folder: Path) -> dict[str, Any]:
    """The watermark part; never raises."""
    if not have_keys:
        reason = "no local keys" if not folder.exists() else f"incomplete keys in {folder}"
        return _not_checked(reason)
    try:
        key = watermark_key(home)
    except ProvenanceError as exc:
        return _not_checked(f"cannot derive the watermark key: {exc}")
    try:
        result = watermark.detect(video, key).to_dict()
    except Exception as exc:  # noqa: BLE001 - never crash on a media file
        return _not_checked(f"watermark detection failed: {type(exc).__name__}: {exc}")
    score = result.get("score")
    if not isinstance(score, int | float) or not math.isfinite(score):
        result["score"] = 0.0  # e.g. -inf on frames too small to correlate: no evidence
    result["checked"] = True
    result["frames_checked"] = video.num_frames
    return _finite(result)


def _finite(value: Any) -> Any:
    """VALUE with every NaN or infinite float replaced by None (strict JSON has none)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _not_checked(reason: str) -> dict[str, Any]:
    return {
        "detected": False,
        "payload_valid": False,
        "payload": None,
        "score": 0.0,
        "checked": False,
        "reason": reason,
    }


def _media(path: Path, video: Video, damage: str | None) -> dict[str, Any]:
    if path.is_dir():
        kind = "frames"
    else:
        kind = path.suffix.lower().lstrip(".") or "unknown"
    return {
        "kind": kind,
        "width": video.width,
        "height": video.height,
        "fps": round(video.fps, 3),
        "frames_checked": video.num_frames,
        "has_audio": _has_audio(path),
        "damaged": damage is not None,
        "decode_error": damage,
    }


def _has_audio(path: Path) -> bool:
    if path.is_dir():
        return False
    try:
        with av.open(str(path)) as container:
            return bool(container.streams.audio)
    except Exception:  # noqa: BLE001 - a probe only
        return False


def _summary(c2pa: dict[str, Any], mark: dict[str, Any], audio_mark: dict[str, Any] | None = None) -> str:
    """One sentence: the manifest's state, then the watermarks'."""
    text = _video_summary(c2pa, mark)
    if audio_mark and audio_mark.get("detected"):
        text += "; kinema audio watermark found"
    return text


def _video_summary(c2pa: dict[str, Any], mark: dict[str, Any]) -> str:
    state = c2pa["state"]
    claims = c2pa.get("claims") or {}
    if state == "Trusted":
        source = (claims.get("digital_source_type") or "").rsplit("/", 1)[-1]
        first = "manifest trusted (signed under the local root" + (f", {source})" if source else ")")
    elif state == "Valid":
        first = f"manifest valid but not trusted (signer {claims.get('signer') or 'unknown'})"
    elif state == "Invalid":
        first = f"manifest invalid: {c2pa['reason']}"
    else:
        first = "no manifest"
    if mark.get("detected"):
        second = "kinema watermark found" + (" (v2)" if mark.get("version") == 2 else "")
        if not mark.get("payload_valid"):
            second += " (payload unreadable)"
        elif mark.get("matches_manifest") is False:
            second += " (payload differs from the manifest's soft binding)"
        if state == "Absent":
            return f"{second}; no manifest (stripped?)"
    elif not mark.get("checked"):
        second = f"watermark not checked ({mark.get('reason')})"
    else:
        second = "no kinema watermark found"
    return f"{first}; {second}"

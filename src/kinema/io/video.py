"""The Video value and its reading and writing through PyAV.

A Video is uint8 frames (T, H, W, 3) in sRGB, a frame rate, and optional audio. The file
format follows the output path: .mp4 (H.264 + AAC), .webm (VP9 + Opus), .gif, or a folder
of lossless PNG frames (a path ending in "/" or without an extension). Every write goes
to a temporary file beside the target and is renamed into place, so a failed or
interrupted write never leaves a half-written output.

A Video made by a model through `kinema.load()` carries a publisher (injected by the
render layer): its `save` watermarks nothing more but signs the file, writes its sidecar
and enters it for review, as the command line does. Any other Video's `save` writes
plain pixels. A single frame may be written as a still: .png, .jpg or .webp.

PyAV is imported inside the functions that read or write files, not at the top:
training, the world renderer and the checker import this module and need no FFmpeg.
"""

from __future__ import annotations

import fractions
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from kinema.errors import InputError
from kinema.io.atomic import publishable, replacing

VIDEO_SUFFIXES = (".mp4", ".webm", ".gif")
# One-frame outputs (stills), by suffix → kind; encoded by OpenCV (JPEG at quality 95,
# WebP lossless, so the invisible watermark survives).
STILL_KINDS = {".png": "png", ".jpg": "jpg", ".jpeg": "jpg", ".webp": "webp"}
# Names kinema writes into a frame folder; anything else there is the user's, and a
# folder holding such files is refused rather than mixed with ours.
FRAME_NAME = "frame_{:04d}.png"
_OWN_FILE = re.compile(r"^(frame_\d{4,}\.png|settings\.json|manifest\.c2pa|.*\.c2pa)$")
# Reading refuses clips larger than this in memory unless the caller raises it.
DEFAULT_MAX_BYTES = 8 * 1024**3


class VideoError(InputError):
    """A video cannot be read or written; the message is one line for the user."""


@dataclass(frozen=True)
class Audio:
    """Audio samples, float32 in [-1, 1], shaped (channels, samples)."""

    samples: np.ndarray
    rate: int

    def __post_init__(self) -> None:
        s = np.asarray(self.samples, dtype=np.float32)
        if s.ndim == 1:
            s = s[None]
        if s.ndim != 2 or s.shape[0] not in (1, 2):
            raise VideoError(f"audio must be (channels, samples) with 1 or 2 channels, got {s.shape}")
        if self.rate <= 0:
            raise VideoError(f"audio rate must be positive, got {self.rate}")
        object.__setattr__(self, "samples", s)

    @property
    def seconds(self) -> float:
        return self.samples.shape[1] / self.rate


@dataclass(frozen=True)
class Video:
    """uint8 frames (T, H, W, 3), frames per second, optional audio.

    `publisher`, when set, is how this Video is saved: model output from the Python API
    carries one (see the module docstring); every derived Video drops it.
    """

    frames: np.ndarray
    fps: float = 8.0
    audio: Audio | None = field(default=None)
    publisher: Callable[[Video, str | os.PathLike], Path] | None = field(
        default=None, compare=False, repr=False
    )

    def __post_init__(self) -> None:
        f = np.asarray(self.frames)
        if f.ndim == 3 and f.shape[-1] == 3:  # a single image
            f = f[None]
        if f.ndim != 4 or f.shape[-1] != 3:
            raise VideoError(f"frames must be (T, H, W, 3), got shape {tuple(f.shape)}")
        if f.shape[0] < 1 or f.shape[1] < 1 or f.shape[2] < 1:
            raise VideoError(f"a video needs at least one frame of at least 1x1, got {f.shape}")
        if f.dtype != np.uint8:
            raise VideoError(f"frames must be uint8, got {f.dtype}")
        if not (0 < float(self.fps) <= 1000):
            raise VideoError(f"fps must be in (0, 1000], got {self.fps}")
        object.__setattr__(self, "frames", np.ascontiguousarray(f))
        object.__setattr__(self, "fps", float(self.fps))

    @property
    def num_frames(self) -> int:
        return self.frames.shape[0]

    @property
    def height(self) -> int:
        return self.frames.shape[1]

    @property
    def width(self) -> int:
        return self.frames.shape[2]

    @property
    def seconds(self) -> float:
        return self.num_frames / self.fps

    def with_frames(self, frames: np.ndarray) -> Video:
        """The same clip (fps, audio) with other frames (no longer a model's output)."""
        return Video(frames, self.fps, self.audio)

    def with_publisher(self, publisher: Callable[[Video, str | os.PathLike], Path]) -> Video:
        """This Video, saved from now on by PUBLISHER(video, path)."""
        return replace(self, publisher=publisher)

    def save(self, path: str | os.PathLike, crf: int | None = None) -> Path:
        """Write the clip to `path` (format from its suffix) atomically; returns the path.

        Model output (a Video with a publisher) is published: signed, given its sidecar
        and entered for review, in the format the path names (crf is then refused: the
        publisher writes at kinema's quality)."""
        if self.publisher is not None:
            if crf is not None:
                raise VideoError("model output is saved at kinema's quality; drop crf")
            return self.publisher(self, path)
        return write_video(self, path, crf=crf)


# ---------------------------------------------------------------- format and target


def output_kind(path: str | os.PathLike) -> str:
    """'mp4', 'webm', 'gif', 'frames' (a folder of PNGs), or a still's 'png', 'jpg' or
    'webp', from how the path is spelled."""
    text = os.fspath(path)
    if not text.strip() or text.strip() in (".", "./"):  # a CLI's Path('') reads as '.'
        raise VideoError(
            "the output path is empty: give a file name (.mp4, .webm, .gif, .png) or a new folder name"
        )
    p = Path(text)
    if text.endswith(("/", os.sep)) or p.suffix == "":
        return "frames"
    suffix = p.suffix.lower()
    if suffix in VIDEO_SUFFIXES:
        return suffix[1:]
    if suffix in STILL_KINDS:
        return STILL_KINDS[suffix]
    raise VideoError(
        f"unsupported output extension '{p.suffix}': use .mp4, .webm, .gif, a still's .png, .jpg "
        "or .webp, or a folder name (no extension) for PNG frames"
    )


def is_still(kind: str) -> bool:
    """Whether an output kind (from output_kind) holds one frame."""
    return kind in STILL_KINDS.values()


def check_output_path(path: str | os.PathLike) -> str:
    """Refuse an output path before any work is done; returns its kind.

    The parent folder must exist; a video path must not be a directory; a frame folder
    may exist only if it holds nothing but kinema's own files.
    """
    kind = output_kind(path)
    p = Path(os.fspath(path))
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise VideoError(f"output folder '{parent}' does not exist")
    _check_writable(parent)
    if kind == "frames":
        if p.exists() and not p.is_dir():
            raise VideoError(f"'{p}' is a file, not a frame folder")
        if p.is_dir():
            foreign = sorted(n for n in os.listdir(p) if not _OWN_FILE.match(n))
            if foreign:
                raise VideoError(f"frame folder '{p}' holds files kinema did not write (e.g. '{foreign[0]}')")
    elif p.is_dir():
        raise VideoError(f"'{p}' is a directory; give a file name ending in .{kind}")
    return kind


def _check_writable(folder: Path) -> None:
    """Refuse a folder no file can be made in (read-only, or a special file system such as
    /proc) before any work: a probe file is made and removed, since permission bits alone
    do not say (root passes them, /proc refuses anyway)."""
    try:
        fd, probe = tempfile.mkstemp(prefix=".kinema-probe-", dir=folder)
    except OSError as e:
        raise VideoError(f"cannot write in '{folder}': {e.strerror or e}") from None
    os.close(fd)
    os.unlink(probe)


# ---------------------------------------------------------------- writing


def write_video(video: Video, path: str | os.PathLike, crf: int | None = None) -> Path:
    """Write `video` to `path` atomically (temporary file, then rename)."""
    kind = check_output_path(path)
    target = Path(os.fspath(path))
    if kind == "frames":
        if video.audio is not None:
            raise VideoError("a folder of PNG frames cannot carry audio; write .mp4 or .webm")
        _write_frame_folder(video, target)
        return target
    if kind == "gif" and video.audio is not None:
        raise VideoError("a GIF cannot carry audio; write .mp4 or .webm")
    if is_still(kind):
        check_still(video, kind)
    with replacing(target) as tmp:
        if is_still(kind):
            tmp.write_bytes(encode_still(video.frames[0], kind))
        elif kind == "gif":
            _write_gif(video, str(tmp))
        else:
            _write_av(video, str(tmp), kind, crf)
    return target


def _rate(fps: float) -> fractions.Fraction:
    return fractions.Fraction(fps).limit_denominator(1001)


def _write_av(video: Video, path: str, kind: str, crf: int | None) -> None:
    import av

    t, h, w, _ = video.frames.shape
    odd = (h % 2) or (w % 2)
    with av.open(path, mode="w", format=kind) as container:
        if kind == "mp4":
            stream = container.add_stream("libx264", rate=_rate(video.fps))
            # 4:2:0 needs even sizes; odd sizes keep full chroma instead of being padded.
            stream.pix_fmt = "yuv444p" if odd else "yuv420p"
            stream.options = {"crf": str(18 if crf is None else crf), "preset": "medium"}
        else:
            stream = container.add_stream("libvpx-vp9", rate=_rate(video.fps))
            stream.pix_fmt = "yuv444p" if odd else "yuv420p"
            stream.bit_rate = 0
            # VP9's rate control skips small chroma-only changes on tiny frames (a green
            # shape growing on gray freezes for a frame): spend more bits where they are few
            default = 8 if max(w, h) <= 128 else 20
            stream.options = {
                "crf": str(default if crf is None else crf),
                "row-mt": "1",
                "deadline": "good",
            }
        stream.width, stream.height = w, h
        audio_stream = None
        if video.audio is not None:
            codec = "aac" if kind == "mp4" else "libopus"
            rate = video.audio.rate if kind == "mp4" else 48000
            audio_stream = container.add_stream(codec, rate=rate)
            audio_stream.layout = "mono" if video.audio.samples.shape[0] == 1 else "stereo"
        for frame in video.frames:
            vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
            container.mux(stream.encode(vf))
        container.mux(stream.encode(None))
        if audio_stream is not None:
            _mux_audio(container, audio_stream, video.audio)


def _mux_audio(container, stream, audio: Audio) -> None:
    import av

    samples = audio.samples
    if stream.rate != audio.rate:
        samples = _resample(samples, audio.rate, stream.rate)
    layout = "mono" if samples.shape[0] == 1 else "stereo"
    resampler = av.AudioResampler(format=stream.format.name, layout=layout, rate=stream.rate)
    chunk = 1024
    for start in range(0, samples.shape[1], chunk):
        block = np.ascontiguousarray(samples[:, start : start + chunk], dtype=np.float32)
        frame = av.AudioFrame.from_ndarray(block, format="fltp", layout=layout)
        frame.sample_rate = stream.rate
        frame.pts = start
        for out in resampler.resample(frame):
            container.mux(stream.encode(out))
    for out in resampler.resample(None):
        container.mux(stream.encode(out))
    container.mux(stream.encode(None))


def _resample(samples: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Linear-interpolation resampling; enough for speech carried into a container."""
    n_out = max(1, round(samples.shape[1] * rate_out / rate_in))
    x_in = np.arange(samples.shape[1]) / rate_in
    x_out = np.arange(n_out) / rate_out
    return np.stack([np.interp(x_out, x_in, ch) for ch in samples]).astype(np.float32)


def gif_palette(frames: np.ndarray) -> np.ndarray:
    """A 256-colour palette (256, 3) for `frames`: exact when they use ≤ 256 colours.

    Otherwise the exact colours that each cover at least 1/512 of the pixels (up to 128:
    a flat background's few shades, so a near-black or near-white region keeps its
    low-contrast detail instead of becoming one colour), then the most frequent colours
    on a 5-bit-per-channel grid, which keeps flat shapes close and spends the rest on
    their anti-aliased edges.
    """
    pixels = frames.reshape(-1, 3)
    packed = (pixels[:, 0].astype(np.uint32) << 16) | (pixels[:, 1].astype(np.uint32) << 8) | pixels[:, 2]
    uniq, counts = np.unique(packed, return_counts=True)
    if len(uniq) > 256:
        by_count = np.argsort(-counts, kind="stable")[:128]
        common = uniq[by_count[counts[by_count] * 512 >= len(pixels)]]
        exact = np.stack([(common >> 16) & 255, (common >> 8) & 255, common & 255], axis=1).astype(np.uint8)
        coarse = (pixels >> 3).astype(np.uint32)
        key = (coarse[:, 0] << 10) | (coarse[:, 1] << 5) | coarse[:, 2]
        keys, inverse, cell_counts = np.unique(key, return_inverse=True, return_counts=True)
        # the mean true colour of each coarse cell, for the fullest cells
        sums = np.zeros((len(keys), 3))
        np.add.at(sums, inverse, pixels.astype(np.float64))
        means = np.round(sums / cell_counts[:, None]).astype(np.uint8)
        order = np.argsort(-cell_counts, kind="stable")[: 256 - len(exact)]
        palette = np.concatenate([exact, means[order]])
    else:
        palette = np.stack([(uniq >> 16) & 255, (uniq >> 8) & 255, uniq & 255], axis=1).astype(np.uint8)
    out = np.zeros((256, 3), np.uint8)
    out[: len(palette)] = palette
    out[len(palette) :] = palette[0]
    return out


def _nearest_palette_index(frame: np.ndarray, palette: np.ndarray) -> np.ndarray:
    flat = frame.reshape(-1, 3).astype(np.int32)
    uniq, inverse = np.unique(flat, axis=0, return_inverse=True)
    d = ((uniq[:, None, :] - palette[None, :, :].astype(np.int32)) ** 2).sum(-1)
    return d.argmin(1).astype(np.uint8)[inverse.ravel()].reshape(frame.shape[:2])


def _write_gif(video: Video, path: str) -> None:
    import av

    palette = gif_palette(video.frames)
    # PyAV takes the palette as (256, 4) ARGB and swaps bytes for the machine itself
    argb = np.concatenate([np.full((256, 1), 255, np.uint8), palette], axis=1)
    t, h, w, _ = video.frames.shape
    with av.open(path, mode="w", format="gif") as container:
        stream = container.add_stream("gif", rate=_rate(video.fps))
        stream.width, stream.height, stream.pix_fmt = w, h, "pal8"
        for frame in video.frames:
            idx = _nearest_palette_index(frame, palette)
            vf = av.VideoFrame.from_ndarray((idx, argb), format="pal8")
            container.mux(stream.encode(vf))
        container.mux(stream.encode(None))


def check_still(video: Video, kind: str) -> None:
    """Refuse writing VIDEO as a still of KIND unless it is one frame without audio."""
    if video.num_frames != 1:
        raise VideoError(
            f"a .{kind} holds one frame and this clip has {video.num_frames}; "
            "write .mp4, .webm, .gif or a frame folder"
        )
    if video.audio is not None:
        raise VideoError(f"a .{kind} cannot carry audio; write .mp4 or .webm")


def encode_still(frame: np.ndarray, kind: str) -> bytes:
    """One RGB frame (H, W, 3) as PNG, JPEG (quality 95) or lossless WebP bytes."""
    import cv2

    params = {"png": [], "jpg": [cv2.IMWRITE_JPEG_QUALITY, 95], "webp": [cv2.IMWRITE_WEBP_QUALITY, 101]}
    ok, data = cv2.imencode(f".{kind}", np.ascontiguousarray(frame[..., ::-1]), params[kind])
    if not ok:
        raise VideoError(f"could not encode a {frame.shape} frame as {kind}")
    return data.tobytes()


def encode_png(frame: np.ndarray) -> bytes:
    """One RGB frame (H, W, 3) as lossless PNG bytes (OpenCV's encoder: no FFmpeg needed)."""
    return encode_still(frame, "png")


def write_png(frame: np.ndarray, path: str | os.PathLike) -> Path:
    """Write one RGB frame as a PNG file atomically."""
    target = Path(os.fspath(path))
    with replacing(target) as tmp:
        tmp.write_bytes(encode_png(frame))
    return target


def _write_frame_folder(video: Video, target: Path) -> None:
    # Frames go to a hidden folder beside the target first; only when all are written
    # are they moved in (a rename each), and stale frames from a longer earlier clip go.
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    publishable(staging, 0o777)
    try:
        names = []
        for i, frame in enumerate(video.frames):
            name = FRAME_NAME.format(i)
            (staging / name).write_bytes(encode_png(frame))
            names.append(name)
        (staging / "settings.json").write_text(json.dumps({"fps": video.fps}))
        if not target.exists():
            os.replace(staging, target)
            return
        for name in [*names, "settings.json"]:
            os.replace(staging / name, target / name)
        keep = set(names)
        for old in target.glob("frame_*.png"):
            if old.name not in keep:
                old.unlink()
    finally:
        shutil.rmtree(staging, ignore_errors=True)


# ---------------------------------------------------------------- reading


def read_video(
    path: str | os.PathLike, max_frames: int | None = None, max_bytes: int = DEFAULT_MAX_BYTES
) -> Video:
    """Read a video file or a folder of PNG frames into a Video.

    Reads at most `max_frames` frames when given; refuses a clip whose frames would take
    more than `max_bytes` of memory. Raises VideoError with one line for anything that is
    missing, not a video, or cannot be decoded.
    """
    import av

    p = Path(os.fspath(path))
    if not p.exists():
        raise VideoError(f"'{p}' does not exist")
    if p.is_dir():
        return _read_frame_folder(p, max_frames, max_bytes)
    try:
        return _read_av(p, max_frames, max_bytes)
    except VideoError:
        raise
    except (av.FFmpegError, ValueError, OSError, IndexError) as e:
        raise VideoError(f"cannot decode '{p}': {_one_line(e)}") from None


def video_header(path: str | os.PathLike) -> tuple[int, int, int]:
    """Width, height and frame count a video file's first video stream declares, read
    without decoding a frame (0 frames: the container does not record the count). Raises
    VideoError with one line for a file that cannot be opened or has no video stream."""
    import av

    p = Path(os.fspath(path))
    try:
        with av.open(str(p)) as container:
            if not container.streams.video:
                raise VideoError(f"'{p.name}' has no video stream")
            stream = container.streams.video[0]
            return int(stream.codec_context.width), int(stream.codec_context.height), int(stream.frames or 0)
    except (av.FFmpegError, ValueError, OSError) as e:
        raise VideoError(f"cannot read '{p.name}': {_one_line(e)}") from None


def _one_line(e: BaseException) -> str:
    # FFmpeg errors carry a readable strerror; their str() adds errno and path noise
    text = getattr(e, "strerror", None) or str(e)
    return " ".join(str(text).split()) or type(e).__name__


def _read_av(p: Path, max_frames: int | None, max_bytes: int) -> Video:
    import av

    with av.open(str(p)) as container:
        if not container.streams.video:
            raise VideoError(f"'{p}' has no video stream")
        vstream = container.streams.video[0]
        vstream.thread_type = "AUTO"
        fps = float(vstream.average_rate or vstream.guessed_rate or 8)
        frames: list[np.ndarray] = []
        total = 0
        for frame in container.decode(vstream):
            arr = frame.to_ndarray(format="rgb24")
            total += arr.nbytes
            if total > max_bytes:
                raise VideoError(
                    f"'{p}' is too large to load: over {max_bytes / 1024**3:.1f} GiB of frames "
                    f"after {len(frames)} frames of {arr.shape[1]}x{arr.shape[0]}"
                )
            frames.append(arr)
            if max_frames is not None and len(frames) >= max_frames:
                break
        if not frames:
            raise VideoError(f"'{p}' holds no decodable frames")
    audio = read_audio(p) if max_frames is None else None
    # GIF timing is stored in 1/100 s, so 8 fps comes back as 1/0.12 s; snap to the rate
    # a human would have asked for when it is that close.
    if p.suffix.lower() == ".gif":
        fps = _snap_gif_fps(p, fps)
    return Video(np.stack(frames), fps, audio)


def _snap_gif_fps(p: Path, fps: float) -> float:
    import av

    with av.open(str(p)) as container:
        stream = container.streams.video[0]
        durations = [pkt.duration for pkt in container.demux(stream) if pkt.duration]
        if durations and stream.time_base:
            fps = 1.0 / float(np.median(durations) * stream.time_base)
    for nice in (8, 10, 12, 15, 24, 25, 30):
        if abs(fps - nice) / nice < 0.06:
            return float(nice)
    return round(fps, 3)


def read_audio(path: str | os.PathLike, max_seconds: float | None = None) -> Audio | None:
    """The first audio stream of a media file (all of it, or its first `max_seconds`);
    None when the file has no audio. Raises VideoError when the file cannot be decoded."""
    import av

    p = Path(os.fspath(path))
    try:
        with av.open(str(p)) as container:
            if not container.streams.audio:
                return None
            astream = container.streams.audio[0]
            rate = astream.rate
            chunks, total = [], 0
            for frame in container.decode(astream):
                arr = frame.to_ndarray()
                if frame.format.is_planar:
                    chunks.append(arr.astype(np.float32))
                else:
                    chunks.append(arr.reshape(-1, len(frame.layout.channels)).T.astype(np.float32))
                total += chunks[-1].shape[1]
                if max_seconds is not None and total >= max_seconds * rate:
                    break
    except (av.FFmpegError, ValueError, OSError, IndexError) as e:
        raise VideoError(f"cannot decode audio of '{p}': {_one_line(e)}") from None
    if not chunks:
        return None
    samples = np.concatenate(chunks, axis=1)
    if max_seconds is not None:
        samples = samples[:, : int(max_seconds * rate)]
    return Audio(samples, rate)


def _read_frame_folder(p: Path, max_frames: int | None, max_bytes: int) -> Video:
    files = sorted(p.glob("frame_*.png"))
    if not files:
        raise VideoError(f"folder '{p}' holds no frame_*.png files")
    if max_frames is not None:
        files = files[:max_frames]
    fps = 8.0
    settings = p / "settings.json"
    if settings.exists():
        try:
            fps = float(json.loads(settings.read_text()).get("fps", fps))
        except (ValueError, TypeError, AttributeError):
            pass
    frames = []
    total = 0
    for f in files:
        arr = read_image(f)
        total += arr.nbytes
        if total > max_bytes:
            raise VideoError(f"'{p}' is too large to load: over {max_bytes / 1024**3:.1f} GiB of frames")
        if frames and arr.shape != frames[0].shape:
            raise VideoError(f"'{f}' is {arr.shape[1]}x{arr.shape[0]}, unlike the frames before it")
        frames.append(arr)
    return Video(np.stack(frames), fps)


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read one image file (PNG, JPEG, ...) as uint8 RGB (H, W, 3)."""
    import av

    p = Path(os.fspath(path))
    if not p.is_file():
        raise VideoError(f"'{p}' does not exist")
    try:
        with av.open(str(p)) as container:
            for frame in container.decode(video=0):
                return frame.to_ndarray(format="rgb24")
    except (av.FFmpegError, ValueError, OSError, IndexError) as e:
        raise VideoError(f"cannot decode image '{p}': {_one_line(e)}") from None
    raise VideoError(f"'{p}' holds no image")

"""Video values and their files."""

from kinema.io.video import (
    Audio,
    Video,
    VideoError,
    check_output_path,
    is_still,
    output_kind,
    read_audio,
    read_image,
    read_video,
    write_png,
    write_video,
)

__all__ = [
    "Audio",
    "Video",
    "VideoError",
    "check_output_path",
    "is_still",
    "output_kind",
    "read_audio",
    "read_image",
    "read_video",
    "write_png",
    "write_video",
]

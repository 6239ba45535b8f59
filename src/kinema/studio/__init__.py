"""Studio: joining shots into finished clips (stitching; storyboards build on it)."""

from kinema.studio.stitch import letterbox, parse_transition, resample_fps, stitch, stitch_files

__all__ = ["letterbox", "parse_transition", "resample_fps", "stitch", "stitch_files"]

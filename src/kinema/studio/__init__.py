"""Studio: joining shots into finished clips (stitching, storyboards), best-of-N takes
judged by QA, and reports of a run."""

from kinema.studio.bestof import best_of, generate_best, qa_score
from kinema.studio.stitch import letterbox, parse_transition, resample_fps, stitch, stitch_files

__all__ = [
    "best_of",
    "generate_best",
    "letterbox",
    "parse_transition",
    "qa_score",
    "resample_fps",
    "stitch",
    "stitch_files",
]

"""Write a colour lesson (kinema.world.lessons) as a folder `kinema lora train` reads:
one folder of PNG frames per clip, its caption in a .txt of the same stem.

    python tools/colour_lesson.py DIR [--colour pink] [--clips 32] [--frames 17] [--size 64]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from kinema.io import Video, write_video
from kinema.world.lessons import lesson_clips


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--colour", default="pink")
    parser.add_argument("--clips", type=int, default=32)
    parser.add_argument("--frames", type=int, default=17)
    parser.add_argument("--size", type=int, default=64)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for i, (caption, frames) in enumerate(
        lesson_clips(args.colour, args.clips, frames=args.frames, size=args.size)
    ):
        stem = f"{args.colour}_{i:02d}"
        write_video(Video(frames, 8.0), args.out / stem)
        (args.out / f"{stem}.txt").write_text(caption + "\n")
    print(f"wrote {args.clips} clips of {args.colour} to {args.out}")


if __name__ == "__main__":
    main()

"""The request layer: one ClipRequest, checked once and rendered by one function, gives
the same file from every door; bad requests are refused before any model loads."""

import json
import os
from pathlib import Path

import numpy as np
import pytest

import kinema
from kinema.cli import main
from kinema.errors import InputError
from kinema.io import Video, read_image, read_video, write_png
from kinema.jobs.queue import JobQueue
from kinema.jobs.worker import work
from kinema.pipelines.facts import ModelFacts
from kinema.provenance.verify import verify_file
from kinema.provenance.watermark import psnr
from kinema.render import ClipRequest, check, parse_adapter, request_from_dict, request_to_dict

PROMPT = "a red circle moving right on a black background"
# what depends on the door and nothing else: the review id, the path, the timestamp
DOOR_FIELDS = {"id", "path", "keys_created"}


def _settings(path: Path) -> dict:
    record = json.loads(Path(f"{path}.json").read_text())
    return {k: v for k, v in record.items() if k not in DOOR_FIELDS}


def test_cli_worker_and_python_make_the_same_file(tiny_model, tmp_path, capsys):
    options = {"seed": 7, "steps": 2, "frames": 9}
    cli_out = tmp_path / "cli.mp4"
    args = ["generate", PROMPT, "-o", str(cli_out), "--model", str(tiny_model)]
    with pytest.raises(SystemExit) as done:
        main(args + ["--seed", "7", "--steps", "2", "--frames", "9"])
    assert done.value.code == 0, capsys.readouterr().err

    queue = JobQueue(tmp_path / "jobs")
    job = queue.submit("alice", {"mode": "t2v", "prompt": PROMPT, "negative": "", **options})
    assert work(tmp_path / "jobs", str(tiny_model), once=True) == 1
    worker_out = queue.output_path(queue.get(job.id))

    model = kinema.load(tiny_model)
    video = model(PROMPT, **options)
    python_out = video.save(tmp_path / "python.mp4")

    settings = [_settings(p) for p in (cli_out, worker_out, python_out)]
    assert settings[0] == settings[1] == settings[2]
    assert settings[0]["seed"] == 7 and settings[0]["frames"] == 9 and settings[0]["mode"] == "t2v"
    pixels = [read_video(p).frames for p in (cli_out, worker_out, python_out)]
    assert np.array_equal(pixels[0], pixels[1]) and np.array_equal(pixels[0], pixels[2])
    # the Python door's Video is the marked clip the file was written from (lossless here)
    folder = video.save(tmp_path / "frames")
    assert np.array_equal(read_video(folder).frames, video.frames)


def test_python_door_output_is_watermarked_signed_and_pending_review(tmp_path):
    from kinema.governance import review

    model = kinema.load()  # the built-in model, as the README's Python example
    video = model(PROMPT, seed=3, steps=4)
    unmarked = model.pipeline(PROMPT, seed=3, steps=4)  # the internal, unmarked pipeline
    assert not np.array_equal(video.frames, unmarked.frames)
    assert psnr(video.frames, unmarked.frames) >= 38  # the mark is the only difference
    path = video.save(tmp_path / "x.mp4")
    report = verify_file(path)
    assert report["c2pa"]["state"] in ("Valid", "Trusted") and report["watermark"]["detected"]
    items = [item for item in review.list_items("pending") if item.path == path.resolve()]
    assert len(items) == 1 and items[0].kind == "clip"
    # a Video no model made is saved as plain pixels: no manifest, no review item
    plain = Video(unmarked.frames, 8.0).save(tmp_path / "plain.mp4")
    assert verify_file(plain)["c2pa"]["state"] == "Absent"
    assert not Path(f"{plain}.json").exists()


def test_a_still_is_one_signed_watermarked_frame_of_the_models_size(tmp_path, capsys):
    # the built-in model: a still of its shapes carries a readable mark (a tiny random
    # model's frame of noise is the mark's worst case, not a still anyone makes)
    for suffix in (".png", ".jpg", ".webp"):
        out = tmp_path / f"still{suffix}"
        with pytest.raises(SystemExit) as done:
            main(["generate", PROMPT, "-o", str(out), "--seed", "2"])  # default steps, as users get
        assert done.value.code == 0, capsys.readouterr().err
        assert read_image(out).shape == (64, 64, 3)
        report = verify_file(out)
        assert report["c2pa"]["state"] == "Trusted" and report["watermark"]["detected"], suffix
        assert json.loads(Path(f"{out}.json").read_text())["frames"] == 1


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--frames", "4"], "a still is one frame"),
        (["--loop"], "a still cannot loop"),
        (["--narration", "hello"], "cannot carry narration"),
    ],
)
def test_options_that_make_no_sense_for_a_still_are_refused(tmp_path, capsys, extra, words):
    out = tmp_path / "still.png"
    with pytest.raises(SystemExit) as done:
        main(["generate", PROMPT, "-o", str(out), *extra])
    err = capsys.readouterr().err
    assert done.value.code == 2 and words in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_check_refuses_before_any_model_loads(tmp_path):
    facts = ModelFacts.read(None)
    cases = [
        (ClipRequest("  "), "empty prompt"),
        (ClipRequest(PROMPT, frames=0), "frames must be between"),
        (ClipRequest(PROMPT, size=(60, 64)), "nearest valid: 64"),
        (ClipRequest(PROMPT, loop=True, frames=40), "nearest: 30"),
        (ClipRequest(PROMPT, mode="remix"), "remix needs source"),
        (ClipRequest(PROMPT, strength=0.5), "strength is for remix"),
        (ClipRequest(PROMPT, mode="extend", source=tmp_path / "none.mp4", add_frames=4), "does not exist"),
        (ClipRequest(PROMPT, image=tmp_path / "none.png"), "does not exist"),
        (ClipRequest(PROMPT, reference=tmp_path / "r.png"), "r.png' does not exist"),
        (ClipRequest(PROMPT, adapters=(parse_adapter("pink:0.8"),)), "no adapter .pink."),
        (ClipRequest(PROMPT, mode="sketch"), "unknown mode"),
    ]
    for request, words in cases:
        with pytest.raises(InputError, match=words):
            check(request, facts)


def test_a_checked_request_draws_its_seed_and_round_trips_as_data(tmp_path):
    image = tmp_path / "first.png"
    write_png(np.zeros((32, 48, 3), np.uint8), image)
    checked = check(ClipRequest(f" {PROMPT} ", image=image, loop=True), ModelFacts.read(None))
    request = checked.request
    assert request.prompt == PROMPT and request.seed is not None and request.frames == 30
    assert request.kind == "loop" and checked.inputs.first.shape == (64, 64, 3)
    assert "cropped" in checked.inputs.notes[0]
    assert request_from_dict(json.loads(json.dumps(request_to_dict(request)))) == request
    with pytest.raises(InputError, match="unknown request field"):
        request_from_dict({"prompt": PROMPT, "colour": "red"})


def test_adapter_scale_syntax():
    assert parse_adapter("pink:0.5").scale == 0.5 and parse_adapter("pink:0.5").source == "pink"
    assert parse_adapter("dir/a:b.safetensors").source == "dir/a:b.safetensors"
    assert parse_adapter("weird:7").source == "weird:7"  # 7 is outside [-2, 2]: part of the name


def test_the_python_door_refuses_a_video_where_a_file_is_needed(tiny_model):
    model = kinema.load(tiny_model)
    with pytest.raises(InputError, match="takes a file path"):
        model.extend(Video(np.zeros((5, 64, 64, 3), np.uint8)), PROMPT, 4)
    with pytest.raises(InputError, match="unknown option"):
        model(PROMPT, colour="red")
    assert os.environ["KINEMA_HOME"]  # the tests never touch the user's state


@pytest.mark.parametrize(
    "args, words",
    [
        (["generate", PROMPT, "-o", ""], "the output path is empty"),
        (["generate", PROMPT, "-o", "/proc/x.mp4"], "cannot write in '/proc'"),
        (["generate", PROMPT, "-o", "{tmp}/x.mp4", "--lora", "pink:0.8"], "no adapter 'pink'"),
        (["generate", PROMPT, "-o", "{tmp}/x.mp4", "--reference", "{tmp}/r.png"], "r.png' does not exist"),
        (["extend", "{tmp}/in.mp4", PROMPT, "-o", "{tmp}/x.mp4"], "needs --add-frames"),
        (
            ["extend", "{tmp}/in.mp4", PROMPT, "-o", "{tmp}/x.mp4", "--add-frames", "4", "--frames", "4"],
            "--add-frames (frames to add) alone",
        ),
        (["remix", "{tmp}/in.mp4", PROMPT, "-o", "{tmp}/x.png"], "a still (.png) comes from generate"),
        (["generate", PROMPT, "-o", "{tmp}/x.gif", "--narration", "hello"], "a GIF cannot carry narration"),
    ],
)
def test_new_refusals_are_one_line_before_any_work(tmp_path, capsys, args, words):
    Video(np.zeros((5, 64, 64, 3), np.uint8)).save(tmp_path / "in.mp4")
    with pytest.raises(SystemExit) as done:
        main([a.format(tmp=tmp_path) for a in args])
    err = capsys.readouterr().err
    assert done.value.code == 2 and words in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "x.mp4").exists() and not (tmp_path / "x.png").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]  # nothing half-written


def test_extend_frames_still_works_with_a_deprecation_line(tiny_model, tmp_path, capsys):
    Video(np.zeros((5, 64, 64, 3), np.uint8)).save(tmp_path / "in.mp4")
    args = ["extend", str(tmp_path / "in.mp4"), PROMPT, "-o", str(tmp_path / "x.mp4"), "--frames", "4"]
    with pytest.raises(SystemExit) as done:
        main([*args, "--model", str(tiny_model), "--steps", "1"])
    err = capsys.readouterr().err
    assert done.value.code == 0 and "deprecated; it means --add-frames" in err
    assert read_video(tmp_path / "x.mp4").num_frames == 9

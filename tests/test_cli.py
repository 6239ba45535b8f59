import json
import os
import subprocess
import sys

import numpy as np
import pytest

from kinema.cli import main
from kinema.io import read_video

PROMPT = "a big red circle moving right on a black background"


def run(capsys, *args):
    with pytest.raises(SystemExit) as info:
        main(list(args))
    out, err = capsys.readouterr()
    return info.value.code, out, err


def test_version(capsys):
    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.startswith("kinema 0.")


def test_render_then_check(capsys, tmp_path):
    out_path = tmp_path / "clip.mp4"
    code, out, err = run(capsys, "world", "render", PROMPT, "-o", str(out_path), "--seed", "3")
    assert code == 0
    assert out.strip().startswith(f"wrote {out_path} (id ") and out.strip().endswith("seed 3)")
    assert "created a local signing certificate chain" in err or err == ""
    sidecar = json.loads((tmp_path / "clip.mp4.json").read_text())
    assert sidecar["prompt"] == PROMPT and sidecar["seed"] == 3 and sidecar["fps"] == 8.0
    code, out, _ = run(capsys, "world", "check", str(out_path), PROMPT)
    report = json.loads(out)
    assert code == 0 and report["pass"] is True
    code, out, _ = run(capsys, "world", "check", str(out_path), PROMPT.replace("right", "left"))
    assert code == 1 and json.loads(out)["pass"] is False


def test_same_command_same_file_and_random_seed_printed(capsys, tmp_path):
    run(capsys, "world", "render", PROMPT, "-o", str(tmp_path / "a.gif"), "--seed", "5")
    run(capsys, "world", "render", PROMPT, "-o", str(tmp_path / "b.gif"), "--seed", "5")
    # the pixels are the same; the signed manifests differ only in their time and id
    assert np.array_equal(read_video(tmp_path / "a.gif").frames, read_video(tmp_path / "b.gif").frames)
    code, out, _ = run(capsys, "world", "render", PROMPT, "-o", str(tmp_path / "frames"), "--json")
    record = json.loads(out)
    assert code == 0 and isinstance(record["seed"], int) and record["path"].endswith("frames")
    assert (tmp_path / "frames" / "frame_0015.png").exists()
    assert json.loads((tmp_path / "frames" / "settings.json").read_text())["seed"] == record["seed"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["a magenta circle moving right on a black background", "-o", "{d}/x.mp4"], "'magenta'"),
        (["", "-o", "{d}/x.mp4"], "empty prompt"),
        ([PROMPT, "-o", "{d}/x.mp4", "--frames", "0"], "--frames"),
        ([PROMPT, "-o", "{d}/x.mp4", "--size", "7"], "--size"),
        ([PROMPT, "-o", "{d}/missing/x.mp4"], "does not exist"),
        ([PROMPT, "-o", "{d}/dir.mp4"], "is a directory"),
        ([PROMPT, "-o", "{d}/x.avi"], "extension"),
        ([PROMPT, "-o", "{d}/x.mp4", "--frames", "many"], "--frames"),
        ([PROMPT], "--output"),
    ],
)
def test_bad_render_input_exits_2_with_one_line_and_no_file(capsys, tmp_path, args, message):
    (tmp_path / "dir.mp4").mkdir()
    before = sorted(os.listdir(tmp_path))
    code, out, err = run(capsys, "world", "render", *[a.format(d=tmp_path) for a in args])
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and message in err
    assert sorted(os.listdir(tmp_path)) == before


def test_bad_check_input_exits_2(capsys, tmp_path):
    (tmp_path / "text.mp4").write_text("hello")
    run(capsys, "world", "render", PROMPT, "-o", str(tmp_path / "ok.mp4"), "--seed", "1")
    (tmp_path / "cut.mp4").write_bytes((tmp_path / "ok.mp4").read_bytes()[:300])
    for clip, prompt in [
        ("nope.mp4", PROMPT),
        ("text.mp4", PROMPT),
        ("cut.mp4", PROMPT),
        ("ok.mp4", "a red circle dancing"),
    ]:
        code, out, err = run(capsys, "world", "check", str(tmp_path / clip), prompt)
        assert code == 2 and out == "" and err.count("\n") == 1, (clip, err)


def test_help_on_every_command(capsys):
    for args in (
        [],
        ["--help"],
        ["world", "--help"],
        ["world", "render", "--help"],
        ["world", "check", "--help"],
    ):
        code, out, _ = run(capsys, *args)
        assert code == 0 and "Usage" in out


def test_console_script_runs(tmp_path):
    exe = os.path.join(os.path.dirname(sys.executable), "kinema")
    done = subprocess.run(
        [exe, "world", "render", PROMPT, "-o", str(tmp_path / "c.webm"), "--seed", "2"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0 and done.stdout.startswith("wrote ")
    done = subprocess.run(
        [exe, "world", "check", str(tmp_path / "c.webm"), PROMPT],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0 and json.loads(done.stdout)["pass"]


def test_review_gate_from_render_to_export(capsys, tmp_path):
    clip = tmp_path / "clip.mp4"
    code, out, err = run(capsys, "world", "render", PROMPT, "-o", str(clip), "--seed", "1", "--json")
    item = json.loads(out)["id"]
    assert code == 0 and "signing certificate chain" in err  # the first write makes the keys
    code, out, _ = run(capsys, "verify", str(clip))
    report = json.loads(out)
    assert code == 0 and report["c2pa"]["state"] == "Trusted"
    assert report["c2pa"]["claims"]["digital_source_type"].endswith("/algorithmicMedia")
    assert report["watermark"]["detected"] is False  # world renders are not model output
    code, out, _ = run(capsys, "review", "list")
    assert item in out and "pending" in out
    code, _, err = run(capsys, "export", item, str(tmp_path / "pub.mp4"))
    assert code == 2 and "only approved items" in err and not (tmp_path / "pub.mp4").exists()
    assert run(capsys, "review", "approve", item, "--note", "looks right")[0] == 0
    code, out, _ = run(capsys, "export", item, str(tmp_path / "pub.mp4"))
    assert code == 0 and out.startswith("wrote ")
    code, out, _ = run(capsys, "verify", str(tmp_path / "pub.mp4"))
    assert json.loads(out)["c2pa"]["state"] == "Trusted" and "approved" in out


def test_trust_commands_refuse_bad_input(capsys, tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    for args in (
        ["verify", str(tmp_path / "notes.txt")],
        ["verify", str(tmp_path / "missing.mp4")],
        ["review", "show", "nope"],
        [
            "consent",
            "add",
            str(tmp_path / "notes.txt"),
            "--owner",
            "a",
            "--scope",
            "b",
            "--expires",
            "2099-01-01",
        ],
        ["export", "nope", str(tmp_path / "x.mp4")],
    ):
        code, out, err = run(capsys, *args)
        assert code == 2 and err.count("\n") == 1, (args, err)


def test_qa_and_stitch_commands(capsys, tmp_path):
    prompt = "a green square moving down on a white background"
    run(capsys, "world", "render", prompt, "-o", str(tmp_path / "a.mp4"), "--seed", "1")
    run(capsys, "world", "render", prompt, "-o", str(tmp_path / "b.mp4"), "--seed", "2")
    code, out, _ = run(
        capsys, "qa", str(tmp_path / "a.mp4"), "--prompt", prompt, "--report", str(tmp_path / "r.png")
    )
    result = json.loads(out)
    assert code == 0 and result["world"]["pass"] and result["flags"] == [] and (tmp_path / "r.png").exists()
    code, out, _ = run(
        capsys,
        "stitch",
        str(tmp_path / "a.mp4"),
        str(tmp_path / "b.mp4"),
        "-o",
        str(tmp_path / "ab.mp4"),
        "--transition",
        "crossfade:4",
    )
    assert code == 0 and out.startswith("wrote ")
    assert read_video(tmp_path / "ab.mp4").num_frames == 28
    code, _, err = run(capsys, "qa", str(tmp_path / "missing.mp4"))
    assert code == 2 and err.count("\n") == 1
    code, _, err = run(capsys, "stitch", str(tmp_path / "a.mp4"), "-o", str(tmp_path / "x.mp4"))
    assert code == 2 and "at least two" in err


def test_narrate_and_verify_the_audio_watermark(capsys, tmp_path):
    code, out, err = run(capsys, "narrate", "A red circle crosses the screen.", "-o", str(tmp_path / "n.wav"))
    assert code == 0 and out.startswith(f"wrote {tmp_path / 'n.wav'}"), err
    code, out, _ = run(capsys, "verify", str(tmp_path / "n.wav"))
    report = json.loads(out)
    assert code == 0 and report["c2pa"]["state"] == "Trusted" and report["audio_watermark"]["detected"]
    assert report["c2pa"]["claims"]["digital_source_type"].endswith("/algorithmicMedia")
    code, _, err = run(capsys, "narrate", "hello", "-o", str(tmp_path / "n.gif"))
    assert code == 2 and err.count("\n") == 1 and not (tmp_path / "n.gif").exists()
    code, _, err = run(capsys, "narrate", "hello", "-o", str(tmp_path / "x.wav"), "--voice", "nobody")
    assert code == 2 and "nobody" in err


def test_detect_scores_a_clip_with_the_caveat(capsys, tmp_path):
    from kinema.io import Video
    from kinema.world import parse, render_frames

    path = Video(render_frames(parse(PROMPT), seed=0, frames=8, size=64), 8.0).save(tmp_path / "c.mp4")
    code, out, _ = run(capsys, "detect", str(path))
    report = json.loads(out)
    assert code == 0 and 0.0 <= report["score"] <= 1.0 and report["file"] == str(path)
    assert report["caveat"] == "triage only: never the sole basis for a decision"
    assert report["label"] in ("likely kinema model", "uncertain", "likely not kinema model")


def test_detect_and_bench_watermark_refuse_bad_input(capsys, tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    for args, message in (
        (["detect", str(tmp_path / "missing.mp4")], "does not exist"),
        (["detect", str(tmp_path / "notes.txt")], "notes.txt"),
        (["detect"], "needs a FILE"),
        (["detect", "--retrain"], "--out"),
        (["detect", "--retrain", "--out", str(tmp_path / "no" / "w.json")], "does not exist"),
        (["detect", str(tmp_path / "notes.txt"), "--out", str(tmp_path / "w.json")], "--retrain"),
        (["bench", "--watermark", "--clips", "0"], "--clips"),
        (["bench", "--watermark", "--memory"], "--watermark"),
        (["bench", "--clips", "3"], "--watermark"),
    ):
        code, out, err = run(capsys, *args)
        assert code == 2 and err.count("\n") == 1 and message in err and out == "", (args, err)
    assert not (tmp_path / "w.json").exists()


@pytest.mark.slow
def test_bench_watermark_prints_the_table(capsys):
    code, out, _ = run(capsys, "bench", "--watermark", "--clips", "1")
    result = json.loads(out)["watermark"]
    assert code == 0 and result["sizes"] == [64, 256] and result["clips_per_size"] == 1
    assert {r["attack"] for r in result["robustness"]} >= {"h264_crf23", "vp9", "gif", "brightness_1.2"}
    assert result["false_positives"]["trials"] == 200 and result["summary"]["wrong_payloads"] == 0

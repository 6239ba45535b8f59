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
    assert code == 0 and result["sizes"] == [64, 128] and result["clips_per_background_and_size"] == 1
    assert result["backgrounds"] == ["black", "gray", "white"] and len(result["visibility"]) == 6
    assert {r["attack"] for r in result["robustness"]} >= {"h264_crf30", "vp9", "gif", "brightness_1.2"}
    assert result["false_positives"]["trials"] == 200
    assert all(r["wrong_payloads"] == 0 for r in result["robustness"]) and result["acceptance"]["checks"] > 0


# ---------------------------------------------------------------- the CLI as users expect (issue 19)


def _commands(include_groups=False):
    """(argv path, click command) of every command under `kinema`, groups too if asked."""
    import typer

    from kinema.cli import app

    def walk(group, path):
        for name, command in group.commands.items():
            if hasattr(command, "commands"):
                if include_groups or command.invoke_without_command:  # `serve` is a group and a command
                    yield [*path, name], command
                yield from walk(command, [*path, name])
            else:
                yield [*path, name], command

    return list(walk(typer.main.get_command(app), []))


def test_export_takes_o_and_keeps_the_positional_form(capsys, tmp_path):
    code, out, _ = run(
        capsys, "world", "render", PROMPT, "-o", str(tmp_path / "c.mp4"), "--seed", "1", "--json"
    )
    item = json.loads(out)["id"]
    assert run(capsys, "review", "approve", item)[0] == 0
    code, out, _ = run(capsys, "export", item, "-o", str(tmp_path / "pub.mp4"))
    assert code == 0 and out == f"wrote {tmp_path / 'pub.mp4'} (id {item})\n"
    for args in ([item], [item, str(tmp_path / "a.mp4"), "-o", str(tmp_path / "b.mp4")]):
        code, out, err = run(capsys, "export", *args)
        assert code == 2 and out == "" and err.count("\n") == 1 and "-o OUT" in err, (args, err)
    assert not (tmp_path / "a.mp4").exists() and not (tmp_path / "b.mp4").exists()
    code, out, _ = run(capsys, "export", item, str(tmp_path / "again.mp4"))
    assert code == 0 and out.startswith(f"wrote {tmp_path / 'again.mp4'}")


def test_review_states_from_the_command_line(capsys, tmp_path):
    # issue 25: reject, then approve, then export used to publish (exit 0)
    render = ["world", "render", PROMPT, "-o", str(tmp_path / "c.mp4"), "--seed", "1", "--json"]
    first = json.loads(run(capsys, *render)[1])["id"]
    second = json.loads(run(capsys, *render)[1])["id"]  # the same command again: a new item
    assert first != second
    code, out, _ = run(capsys, "review", "list")
    assert f"{first}  superseded" in out and f"{second}  pending" in out
    assert run(capsys, "review", "reject", second, "--note", "flickers")[1] == f"rejected {second}\n"
    for args in (["review", "approve", second], ["export", second, "-o", str(tmp_path / "pub.mp4")]):
        code, out, err = run(capsys, *args)
        assert code == 2 and out == "" and err.count("\n") == 1 and f"{second} is rejected (final)" in err
    assert not (tmp_path / "pub.mp4").exists()
    third = json.loads(run(capsys, *render)[1])["id"]
    code, out, _ = run(capsys, "review", "approve", third)
    assert code == 0 and out == f"approved {third} (self-review)\n"
    assert run(capsys, "export", third, "-o", str(tmp_path / "pub.mp4"))[0] == 0
    assert run(capsys, "review", "withdraw", third)[1] == f"withdrawn {third}\n"
    code, _, err = run(capsys, "export", third, "-o", str(tmp_path / "again.mp4"))
    assert code == 2 and "is withdrawn" in err and not (tmp_path / "again.mp4").exists()
    assert run(capsys, "review", "policy")[1] == "four-eyes review is off\n"
    assert run(capsys, "review", "policy", "--four-eyes", "on")[1] == "four-eyes review is now on\n"
    assert run(capsys, "review", "policy", "--four-eyes", "maybe")[0] == 2
    fourth = json.loads(run(capsys, *render)[1])["id"]
    code, _, err = run(capsys, "review", "approve", fourth)
    assert code == 2 and "four-eyes review is on" in err
    code, out, _ = run(capsys, "audit", "verify")
    assert code == 0 and out.startswith("audit log intact")
    code, out, _ = run(capsys, "review", "--help")
    assert all(state in out for state in ("pending", "approved", "rejected", "withdrawn", "superseded"))


def test_review_list_is_newest_first_under_a_header(capsys, monkeypatch):
    from types import SimpleNamespace

    from kinema.governance import review

    def item(id, created):
        return SimpleNamespace(id=id, status="pending", kind="video", created=created, path=f"/w/{id}.mp4")

    oldest_first = [item("0000000a", "2026-01-01T10:00:00Z"), item("0000000b", "2026-03-01T09:00:00Z")]
    monkeypatch.setattr(review, "list_items", lambda status=None: oldest_first)
    code, out, _ = run(capsys, "review", "list")
    header, first, second = out.splitlines()
    assert code == 0 and header.split() == ["ID", "STATUS", "KIND", "CREATED", "PATH"]
    assert first.split() == ["0000000b", "pending", "video", "2026-03-01T09:00:00Z", "/w/0000000b.mp4"]
    assert second.startswith("0000000a")
    assert header.index("CREATED") == first.index("2026-") and header.index("PATH") == first.index("/w/")


def test_help_states_the_built_in_models_defaults():
    from importlib import resources

    from kinema.cli.common import BUILTIN_DEFAULTS

    model = json.loads((resources.files("kinema") / "weights" / "builtin" / "model.json").read_text())
    builtin = model["defaults"]
    assert {name: builtin[name] for name in BUILTIN_DEFAULTS} == BUILTIN_DEFAULTS
    checked = []
    for path, command in _commands():
        if path == ["train"]:  # its --steps are training steps, not the sampler's
            continue
        for param in command.params:
            if param.hidden:  # a deprecated alias (extend --frames) is not documented
                continue
            if param.name in BUILTIN_DEFAULTS and param.default is None and not param.required:
                expected = f"default: the model's, {builtin[param.name]:g} for the built-in model"
                assert expected in param.help, (path, param.name, param.help)
                checked.append((path[-1], param.name))
    assert {("generate", "steps"), ("remix", "guidance"), ("storyboard", "steps"), ("eval", "steps")} <= set(
        checked
    )


def test_every_option_with_a_default_shows_it(capsys):
    for path, command in _commands():
        for param in command.params:
            if param.param_type_name == "option" and param.default is not None and not param.is_flag:
                assert param.show_default, (path, param.name)
    code, out, _ = run(capsys, "generate", "--help")
    assert code == 0 and "[default: cpu]" in out and "[default: amber]" in out
    from kinema.bench import WATERMARK_CLIPS

    clips = next(p for path, c in _commands() if path == ["bench"] for p in c.params if p.name == "clips")
    assert f"default {WATERMARK_CLIPS} " in clips.help  # None there means "not given", so the text says it


def test_every_command_help_has_an_example(capsys):
    paths = [path for path, _ in _commands(include_groups=True)]
    assert len(paths) > 30 and ["serve"] in paths and ["review", "list"] in paths
    for path in [[], *paths]:
        code, out, _ = run(capsys, *path, "--help")
        assert code == 0 and "Example: kinema " in out, path


def test_storyboard_help_shows_the_board_format(capsys):
    code, out, _ = run(capsys, "storyboard", "--help")
    assert code == 0
    for text in ("shots:", "- prompt:", "frames:", "seconds:", "seed:", "image:", "transition:"):
        assert text in out, text
    assert "cut (default) | crossfade:N | continue" in out
    assert "joins the PREVIOUS shot into this one" in out and "refused" in out


def test_progress_off_a_terminal_prints_a_plain_line_every_interval(capsys):
    from kinema.cli.common import with_progress

    now = 0.0

    def work(progress):
        nonlocal now
        for step in range(1, 25):
            now += 0.5
            progress(step, 24)
        progress(25, None)
        return "done"

    assert with_progress(work, "generating", False, clock=lambda: now, interval=2.0) == "done"
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert out == "" and len(lines) == 6
    assert lines[0] == "generating: 4/24 steps, 2.0 s" and lines[-1] == "generating: 24/24 steps, 12.0 s"
    assert with_progress(lambda progress: progress, "generating", True) is None  # --json: no display


def test_progress_with_an_unknown_total_shows_no_none(capsys, monkeypatch):
    import io

    from kinema.cli.common import with_progress

    now = 0.0

    def work(progress):
        nonlocal now
        now += 3.0
        progress(0, None)
        return 1

    with_progress(work, "shots", False, "shots", clock=lambda: now, interval=1.0)
    assert capsys.readouterr().err == "shots: 0 shots, 3.0 s\n"

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    with_progress(lambda progress: progress(2, None), "shots", False, "shots")
    assert "2 shots" in terminal.getvalue() and "None" not in terminal.getvalue()
    terminal.truncate(0)
    with_progress(lambda progress: progress(3, 8), "generating", False)
    assert "3/8 steps" in terminal.getvalue()

"""Narration and voices: narrate, and voice list|phrase|enroll."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from kinema.cli.common import (
    DiscloseOption,
    ExpiresOption,
    JsonOption,
    PitchOption,
    RateOption,
    VoiceOption,
    VoiceScopeOption,
    add_group,
    report_written,
)
from kinema.errors import InputError

app = typer.Typer()
voice_app = add_group(
    app, "voice", "Voices for narration: built-in ones and consented profiles.", "kinema voice list"
)


@app.command("narrate")
def narrate(
    text: Annotated[str, typer.Argument(help="What to say.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="OUT.wav, or OUT.mp4/.webm with --video.")],
    voice: VoiceOption = "amber",
    rate: RateOption = None,
    pitch: PitchOption = 0.0,
    video: Annotated[
        Path | None, typer.Option("--video", help="Narrate over this clip (fitted to its length).")
    ] = None,
    scope: VoiceScopeOption = None,
    disclose_aloud: DiscloseOption = False,
    as_json: JsonOption = False,
) -> None:
    """Speak TEXT offline (eSpeak NG) into a signed, watermarked .wav, or over a clip.

    Example: kinema narrate 'A red circle crosses the screen.' -o narrated.mp4 --video clip.mp4
    """
    from kinema.io import check_output_path, read_video
    from kinema.publish import Origin, publish, write_narration
    from kinema.voice.narrate import SYNTHESIZER, check_narration_output, narrate_video
    from kinema.voice.tts import check_text

    check_text(text)
    kind = check_narration_output(output)
    if kind != "wav":
        if video is None:
            raise InputError(f"narrating into .{kind} needs --video IN (or write OUT.wav)")
        check_output_path(output)
    clip = read_video(video) if video is not None else None  # refuses a file with no video stream
    common = dict(
        voice=voice, scope=scope, rate_wpm=rate, pitch_semitones=pitch, disclose_aloud=disclose_aloud
    )
    if kind == "wav":
        seconds = clip.seconds if clip is not None else None
        record = write_narration(
            text, output, seconds=seconds, ingredients=(video,) if video else (), **common
        )
    else:
        narrated, settings = narrate_video(clip, text, **common)
        settings = {"seed": 0, "frames": narrated.num_frames, "fps": narrated.fps, **settings}
        record = publish(
            narrated,
            output,
            settings,
            Origin(SYNTHESIZER, trained=False),
            edit="narrate",
            ingredients=[video],
        )
    report_written(record, as_json)


@voice_app.command("list")
def voice_list(as_json: JsonOption = False) -> None:
    """Name the built-in voices, then enrolled ones (with owner, scope, expiry, status).

    Example: kinema voice list --json
    """
    from kinema.voice.profiles import list_voices

    for entry in list_voices():
        if as_json:
            typer.echo(json.dumps(entry))
        elif entry["kind"] == "built-in":
            typer.echo(f"{entry['name']:<12} built-in  {entry['description']}")
        else:
            unchecked = "" if entry["words_checked"] else "; its code words were not checked: enrol it again"
            typer.echo(
                f"{entry['name']:<12} enrolled  {entry['owner']}, scope {entry['scope']}, "
                f"until {entry['expires']} ({entry['status']}{unchecked})"
            )


@voice_app.command("phrase")
def voice_phrase(name: Annotated[str, typer.Argument(help="The name the new voice will have.")]) -> None:
    """Print the consent phrase the voice's owner must read aloud for enrolling NAME.

    It ends in four code words; enrolment checks that the consent recording says each one.

    Example: kinema voice phrase ada
    """
    from kinema.voice.profiles import consent_phrase

    typer.echo(consent_phrase(name))


@voice_app.command("enroll")
def voice_enroll(
    name: Annotated[str, typer.Argument(help="The new voice's name.")],
    reference: Annotated[Path, typer.Option(help="At least 3 s of the person's speech (any audio file).")],
    consent: Annotated[Path, typer.Option(help="The same person reading `kinema voice phrase NAME`.")],
    owner: Annotated[str, typer.Option(help="Whose voice it is (who consented).")],
    scope: Annotated[str, typer.Option(help="What the consent covers, e.g. 'demo-reel-2026'.")],
    expires: ExpiresOption,
) -> None:
    """Enrol a voice profile from a reference recording, only with its owner's recorded consent.

    Example: kinema voice enroll ada --reference ada.wav --consent ada-consent.wav --owner 'Ada L.' --scope demo-reel-2026 --expires 2026-12-31
    """
    from kinema.voice.profiles import enroll

    record = enroll(name, reference, consent, owner=owner, scope=scope, expires=expires)
    typer.echo(
        f"voice {record.name} enrolled (consent {record.id}, {owner}, scope {scope}, until {expires}, "
        f"similarity {record.similarity:.2f})"
    )

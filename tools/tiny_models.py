"""Tiny random diffusers folders of every pipeline class kinema's backends serve, built offline.

    python tools/tiny_models.py NAME DIR     # write the folder NAME into DIR
    python tools/tiny_models.py --list       # the names
    python tools/tiny_models.py --lora MODEL_DIR OUT.safetensors   # a LoRA file for it

Each folder is complete (scheduler, tokenizer, text encoder, VAE, transformer) and a few
hundred kilobytes: a one- or two-block transformer, a VAE of width 8 and a T5 of width 32
whose tokenizer is a Unigram vocabulary of single letters made here, so nothing is
downloaded, and a 9-frame 64x64 clip takes seconds on a CPU. Sizes follow what each
family's code needs (CogVideoX's RoPE wants a head dimension divisible by 16, LTX-Video's
sizes are multiples of 32). The weights are random: the clips are noise, made through the
same loading code as real weights. This lives in tools/, not in the package, so that
nothing a user installs builds test models.
"""

from __future__ import annotations

import string
from pathlib import Path

import torch


def tokenizer():
    """A T5 tokenizer over single letters: enough to turn any prompt into ids."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import T5TokenizerFast

    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    vocab += [(c, -3.0) for c in string.ascii_lowercase] + [("▁" + c, -2.5) for c in string.ascii_lowercase]
    model = Tokenizer(models.Unigram(vocab, unk_id=2))
    model.pre_tokenizer = pre_tokenizers.Metaspace()
    model.decoder = decoders.Metaspace()
    return T5TokenizerFast(
        tokenizer_object=model, eos_token="</s>", pad_token="<pad>", unk_token="<unk>", extra_ids=0
    )


def _t5_config(cls):
    return cls(
        vocab_size=64,
        d_model=32,
        d_kv=8,
        d_ff=37,
        num_layers=2,
        num_heads=4,
        relative_attention_num_buckets=8,
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
    )


def t5():
    from transformers import T5Config, T5EncoderModel

    return T5EncoderModel(_t5_config(T5Config))


def umt5():
    from transformers import UMT5Config, UMT5EncoderModel

    return UMT5EncoderModel(_t5_config(UMT5Config))


def _wan_transformer(cls, in_channels: int, **extra):
    return cls(
        patch_size=(1, 2, 2),
        num_attention_heads=2,
        attention_head_dim=12,
        in_channels=in_channels,
        out_channels=16,
        text_dim=32,
        freq_dim=256,
        ffn_dim=32,
        num_layers=2,
        cross_attn_norm=True,
        qk_norm="rms_norm_across_heads",
        rope_max_seq_len=32,
        **extra,
    )


def wan(folder: Path, kind: str = "t2v") -> Path:
    """A Wan folder: kind t2v (WanPipeline), i2v (WanImageToVideoPipeline) or vace (WanVACEPipeline)."""
    import diffusers

    torch.manual_seed(0)
    parts = dict(
        vae=diffusers.AutoencoderKLWan(
            base_dim=3,
            z_dim=16,
            dim_mult=[1, 1, 1, 1],
            num_res_blocks=1,
            temperal_downsample=[False, True, True],
        ),
        scheduler=diffusers.UniPCMultistepScheduler(
            prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=3.0
        ),
        text_encoder=umt5(),
        tokenizer=tokenizer(),
    )
    if kind == "i2v":
        # noise, then the first/last-frame mask (4) and the image latents (16)
        transformer = _wan_transformer(diffusers.WanTransformer3DModel, 36)
        pipe = diffusers.WanImageToVideoPipeline(
            **parts, transformer=transformer, image_encoder=None, image_processor=None
        )
    elif kind == "vace":
        # the control branch reads the inactive and reactive latents (2 x 16) and the mask
        # folded to the latent grid (8 x 8 = 64 channels): 96, as in Wan2.1-VACE
        transformer = _wan_transformer(
            diffusers.WanVACETransformer3DModel, 16, vace_layers=[0, 1], vace_in_channels=96
        )
        pipe = diffusers.WanVACEPipeline(**parts, transformer=transformer)
    else:
        pipe = diffusers.WanPipeline(
            **parts, transformer=_wan_transformer(diffusers.WanTransformer3DModel, 16)
        )
    pipe.save_pretrained(folder)
    return folder


def ltx(folder: Path, kind: str = "t2v") -> Path:
    """An LTX-Video folder naming LTXPipeline (kind t2v) or LTXConditionPipeline (kind condition)."""
    import diffusers

    torch.manual_seed(0)
    vae = diffusers.AutoencoderKLLTXVideo(
        latent_channels=8,
        block_out_channels=(8, 8, 8, 8),
        decoder_block_out_channels=(8, 8, 8, 8),
        layers_per_block=(1, 1, 1, 1, 1),
        decoder_layers_per_block=(1, 1, 1, 1, 1),
        spatio_temporal_scaling=(True, True, False, False),
        decoder_spatio_temporal_scaling=(True, True, False, False),
        decoder_inject_noise=(False, False, False, False, False),
        upsample_residual=(False, False, False, False),
        upsample_factor=(1, 1, 1, 1),
        timestep_conditioning=False,
        patch_size=1,
        patch_size_t=1,
        encoder_causal=True,
        decoder_causal=False,
    )
    transformer = diffusers.LTXVideoTransformer3DModel(
        in_channels=8,
        out_channels=8,
        patch_size=1,
        patch_size_t=1,
        num_attention_heads=4,
        attention_head_dim=8,
        cross_attention_dim=32,
        num_layers=1,
        caption_channels=32,
    )
    cls = diffusers.LTXConditionPipeline if kind == "condition" else diffusers.LTXPipeline
    pipe = cls(
        scheduler=diffusers.FlowMatchEulerDiscreteScheduler(),
        vae=vae,
        text_encoder=t5(),
        tokenizer=tokenizer(),
        transformer=transformer,
    )
    pipe.save_pretrained(folder)
    return folder


def cogvideox(folder: Path, kind: str = "t2v") -> Path:
    """A CogVideoX folder: kind t2v (CogVideoXPipeline), i2v (CogVideoXImageToVideoPipeline),
    v2v (CogVideoXVideoToVideoPipeline) or control (CogVideoXFunControlPipeline)."""
    import diffusers

    torch.manual_seed(0)
    if kind == "i2v":
        # like CogVideoX-5b-I2V: RoPE plus a learned position table for one latent grid (8x8 → 64x64)
        shape = dict(
            num_attention_heads=2,
            attention_head_dim=16,
            in_channels=8,
            sample_width=8,
            sample_height=8,
            use_rotary_positional_embeddings=True,
            use_learned_positional_embeddings=True,
        )
    else:
        # like CogVideoX-2b: sin-cos positions, made for any grid; CogVideoX-Fun control
        # takes the control video's latents as 4 more input channels
        shape = dict(
            num_attention_heads=4,
            attention_head_dim=8,
            in_channels=8 if kind == "control" else 4,
            sample_width=4,
            sample_height=4,
        )
    transformer = diffusers.CogVideoXTransformer3DModel(
        out_channels=4,
        time_embed_dim=2,
        text_embed_dim=32,
        num_layers=1,
        sample_frames=9,
        patch_size=2,
        temporal_compression_ratio=4,
        max_text_seq_length=16,
        **shape,
    )
    vae = diffusers.AutoencoderKLCogVideoX(
        down_block_types=("CogVideoXDownBlock3D",) * 4,
        up_block_types=("CogVideoXUpBlock3D",) * 4,
        block_out_channels=(8, 8, 8, 8),
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=2,
        temporal_compression_ratio=4,
    )
    cls = {
        "t2v": diffusers.CogVideoXPipeline,
        "i2v": diffusers.CogVideoXImageToVideoPipeline,
        "v2v": diffusers.CogVideoXVideoToVideoPipeline,
        "control": diffusers.CogVideoXFunControlPipeline,
    }[kind]
    pipe = cls(
        tokenizer=tokenizer(),
        text_encoder=t5(),
        vae=vae,
        transformer=transformer,
        scheduler=diffusers.DDIMScheduler(),
    )
    pipe.save_pretrained(folder)
    return folder


# every folder this tool writes: NAME → (builder, kind)
MODELS = {
    "wan-t2v": (wan, "t2v"),
    "wan-i2v": (wan, "i2v"),
    "wan-vace": (wan, "vace"),
    "ltx": (ltx, "t2v"),
    "ltx-condition": (ltx, "condition"),
    "cogvideox": (cogvideox, "t2v"),
    "cogvideox-i2v": (cogvideox, "i2v"),
    "cogvideox-v2v": (cogvideox, "v2v"),
    "cogvideox-fun-control": (cogvideox, "control"),
}


# the attention projections a LoRA file for a tiny folder adapts, in every family's naming
LORA_TARGETS = ("to_q", "to_k", "to_v", "to_out.0")


def lora(model: Path, out: Path, rank: int = 2, seed: int = 0, metadata: dict | None = None) -> Path:
    """Write a diffusers-format LoRA file for the folder MODEL's transformer to OUT: a random
    lora_A / lora_B pair (rank RANK) on every attention projection, keyed
    `transformer.<module>.lora_A.weight` as diffusers' load_lora_weights reads them; B is
    not zero (as a trained adapter's is not), so the file changes the model's output."""
    import json

    import diffusers
    from safetensors.torch import save_file

    config = json.loads((Path(model) / "transformer" / "config.json").read_text())
    with torch.device("meta"):  # only the module names and shapes are needed
        transformer = getattr(diffusers, config["_class_name"]).from_config(config)
    generator = torch.Generator().manual_seed(seed)
    tensors = {}
    for name, module in transformer.named_modules():
        if isinstance(module, torch.nn.Linear) and name.endswith(LORA_TARGETS):
            a = torch.randn(rank, module.in_features, generator=generator) / module.in_features**0.5
            b = torch.randn(module.out_features, rank, generator=generator)
            tensors[f"transformer.{name}.lora_A.weight"] = a.contiguous()
            tensors[f"transformer.{name}.lora_B.weight"] = b.contiguous()
    if not tensors:
        raise ValueError(f"{model}: its transformer has no attention projection to adapt")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out), metadata=metadata)
    return out


def build(name: str, folder: Path) -> Path:
    """Write the tiny folder NAME (one of MODELS) into FOLDER; returns FOLDER."""
    if name not in MODELS:
        raise ValueError(f"unknown tiny model {name!r}: choose one of {', '.join(MODELS)}")
    from kinema.pipelines.backends.base import quiet

    builder, kind = MODELS[name]
    with quiet():  # no saving bars on stderr, where tests read one error line
        return builder(Path(folder), kind)


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("name", nargs="?", help="which folder to write (see --list)")
    parser.add_argument("folder", nargs="?", type=Path, help="where to write it")
    parser.add_argument("--list", action="store_true", help="print the names, one a line")
    parser.add_argument(
        "--lora",
        nargs=2,
        type=Path,
        metavar=("MODEL_DIR", "OUT"),
        help="write a diffusers-format LoRA file for a tiny folder's transformer",
    )
    args = parser.parse_args(argv)
    if args.list:
        print("\n".join(MODELS))
        return 0
    if args.lora:
        lora(*args.lora)
        print(f"wrote {args.lora[1]} (LoRA for {args.lora[0]})")
        return 0
    if args.name is None or args.folder is None:
        parser.error("give NAME and DIR, or --list")
    if args.name not in MODELS:
        parser.error(f"unknown name {args.name!r}: choose one of {', '.join(MODELS)}")
    build(args.name, args.folder)
    print(f"wrote {args.folder} ({args.name})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

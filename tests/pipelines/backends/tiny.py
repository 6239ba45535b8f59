"""Tiny random Wan, LTX-Video and CogVideoX folders in diffusers format, built offline.

Each is a few hundred kilobytes: a two-block transformer, a VAE of width 8 and a T5 of
width 32 whose tokenizer is a Unigram vocabulary of single letters made here, so nothing
is downloaded. Sizes follow what each family's code needs (CogVideoX's RoPE wants a
head dimension divisible by 16, LTX-Video's sizes are multiples of 32).
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


def wan(folder: Path, image_to_video: bool = False) -> Path:
    from diffusers import (
        AutoencoderKLWan,
        UniPCMultistepScheduler,
        WanImageToVideoPipeline,
        WanPipeline,
        WanTransformer3DModel,
    )

    torch.manual_seed(0)
    parts = dict(
        vae=AutoencoderKLWan(
            base_dim=3,
            z_dim=16,
            dim_mult=[1, 1, 1, 1],
            num_res_blocks=1,
            temperal_downsample=[False, True, True],
        ),
        scheduler=UniPCMultistepScheduler(
            prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=3.0
        ),
        text_encoder=umt5(),
        tokenizer=tokenizer(),
        transformer=WanTransformer3DModel(
            patch_size=(1, 2, 2),
            num_attention_heads=2,
            attention_head_dim=12,
            # image to video: noise, then the first/last-frame mask (4) and image latents (16)
            in_channels=36 if image_to_video else 16,
            out_channels=16,
            text_dim=32,
            freq_dim=256,
            ffn_dim=32,
            num_layers=2,
            cross_attn_norm=True,
            qk_norm="rms_norm_across_heads",
            rope_max_seq_len=32,
        ),
    )
    if image_to_video:
        pipe = WanImageToVideoPipeline(**parts, image_encoder=None, image_processor=None)
    else:
        pipe = WanPipeline(**parts)
    pipe.save_pretrained(folder)
    return folder


def ltx(folder: Path) -> Path:
    from diffusers import (
        AutoencoderKLLTXVideo,
        FlowMatchEulerDiscreteScheduler,
        LTXPipeline,
        LTXVideoTransformer3DModel,
    )

    torch.manual_seed(0)
    vae = AutoencoderKLLTXVideo(
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
    transformer = LTXVideoTransformer3DModel(
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
    pipe = LTXPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(),
        vae=vae,
        text_encoder=t5(),
        tokenizer=tokenizer(),
        transformer=transformer,
    )
    pipe.save_pretrained(folder)
    return folder


def cogvideox(folder: Path, image_to_video: bool = False) -> Path:
    from diffusers import (
        AutoencoderKLCogVideoX,
        CogVideoXImageToVideoPipeline,
        CogVideoXPipeline,
        CogVideoXTransformer3DModel,
        DDIMScheduler,
    )

    torch.manual_seed(0)
    if image_to_video:
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
        # like CogVideoX-2b: sin-cos positions, made for any grid
        shape = dict(
            num_attention_heads=4, attention_head_dim=8, in_channels=4, sample_width=4, sample_height=4
        )
    transformer = CogVideoXTransformer3DModel(
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
    vae = AutoencoderKLCogVideoX(
        down_block_types=("CogVideoXDownBlock3D",) * 4,
        up_block_types=("CogVideoXUpBlock3D",) * 4,
        block_out_channels=(8, 8, 8, 8),
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=2,
        temporal_compression_ratio=4,
    )
    cls = CogVideoXImageToVideoPipeline if image_to_video else CogVideoXPipeline
    pipe = cls(
        tokenizer=tokenizer(), text_encoder=t5(), vae=vae, transformer=transformer, scheduler=DDIMScheduler()
    )
    pipe.save_pretrained(folder)
    return folder

"""Pipelines compose a text encoder, a VAE, a denoiser and a sampler; they return a Video
and write nothing."""

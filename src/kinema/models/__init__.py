"""kinema's own models: the video VAE, the diffusion transformer and the text encoders."""

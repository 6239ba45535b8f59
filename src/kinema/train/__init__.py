"""Training the built-in model: presets, the loop, checkpoints (safetensors only)."""

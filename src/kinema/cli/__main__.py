"""`python -m kinema.cli …` (torchrun and accelerate launch start training this way)."""

from kinema.cli import main

main()

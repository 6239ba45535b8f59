"""Narration: offline text-to-speech (eSpeak NG), voice profiles with consent, fitting to clips."""

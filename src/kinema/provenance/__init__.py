"""Provenance: marks in media. Invisible watermarks (video and audio), signed C2PA
manifests, the local signing keys, verification and the triage detector. Works on any
Video; knows no model. Who may publish what is kinema.governance's."""

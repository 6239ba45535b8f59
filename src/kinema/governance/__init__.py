"""The rules of who may publish what: the prompt screen and likeness policy, consent
records, the human review gate and the hash-chained audit log. Marks in media (watermarks,
C2PA manifests, verification) are kinema.provenance's, one layer below: review signs
exports with them."""

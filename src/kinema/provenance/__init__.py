"""Provenance: invisible watermarks, signed C2PA manifests, local signing keys,
rights and consent policy, review and the audit log. Works on any Video; knows no model."""

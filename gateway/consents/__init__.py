"""Consent resources (UK Open Banking v3.1): their model, validation, store access and the TPP-facing API."""

"""Every Redis key name, in one place. Keys are `obgw:<kind>:<id>`.

Keys that one request's script touches together will carry the TPP's client id as a Redis Cluster hash tag
(`obgw:{tpp-demo}:consent:<id>`) so a one-round-trip script stays valid on Redis Cluster.
"""
from __future__ import annotations

# Audit log (one hash tag, so the append script runs on one Cluster slot): one stream holds every record of every chain, in arrival order; one hash holds each chain's head.
AUDIT_STREAM = "obgw:{audit}:records"
AUDIT_HEADS = "obgw:{audit}:heads"

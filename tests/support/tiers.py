"""Test tiers kept out of `make test` to hold it under 15 minutes; `.ci/run` runs each."""
from __future__ import annotations

import os

import pytest

# Minutes of waiting or load rather than checks: `make test-long` (LONG_TIER=1) runs them.
long_tier = pytest.mark.skipif(os.environ.get("LONG_TIER") != "1",
                               reason="the long tier: `make test-long` runs it (.ci/run does)")

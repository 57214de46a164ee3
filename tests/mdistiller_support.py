"""Shared set-up of the tests that need an installed mdistiller (skipped cleanly without one)."""

import pytest

SKIP_REASON = ("mdistiller is not installed; to run the bridge tests install megvii-research/mdistiller or "
               "sunshangquan/logit-standardization-KD from a local clone: pip install --no-deps -e <clone> tensorboardX")


def require_mdistiller():
    pytest.importorskip("mdistiller", reason=SKIP_REASON)
    pytest.importorskip("tensorboardX", reason=SKIP_REASON)
    from mdistiller_patches import mdistiller_variant

    return mdistiller_variant()

"""Spec keys MLflow would refuse as param names (glob patterns) are spelled so it accepts them."""

from lth_suite.tracking.names import param_key
from lth_suite.tracking.writer import flatten


def test_glob_characters_become_code_points_and_plain_keys_stay():
    assert param_key("blocks.*.attn.?[0]") == "blocks.:x2a:.attn.:x3f::x5b:0:x5d:"
    assert param_key("fc1.weight") == "fc1.weight"
    flat = flatten({"fraction": {"blocks.*": 0.2, "conv": 0.1}})
    assert flat == {"fraction.blocks.:x2a:": "0.2", "fraction.conv": "0.1"}

"""The lth-suite plugin: registers ``snip``, ``grasp`` and ``synflow``."""

from __future__ import annotations

from lth_suite.api import RegisterFn, hookimpl, lazy

from .params import GraspParams, SnipParams, SynflowParams


@hookimpl
def lth_register_criteria(register: RegisterFn) -> None:
    """Register the three pruning-at-initialisation criteria."""
    register("snip", lazy("lth_suite_pai.criteria:snip"), SnipParams,
             "SNIP (Lee et al. 2019): keeps the largest |gradient x weight| of a loss")
    register("grasp", lazy("lth_suite_pai.criteria:grasp"), GraspParams,
             "GraSP (Wang et al. 2020): keeps the weights whose removal most reduces "
             "gradient flow (largest w x Hg)")
    register("synflow", lazy("lth_suite_pai.criteria:synflow"), SynflowParams,
             "SynFlow (Tanaka et al. 2020): data-free, iterative synaptic flow")

"""The spec's ``report:`` section: which figures, in which files and style, with which
statistics. Not part of the spec hash: a report can be rewritten with other settings."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from .base import Strict


class Report(Strict):
    """Figures, a summary table and statistics across replicates, written after the run."""

    enabled: bool = Field(default=True, description="write the report when the run finishes")
    levels: list[int] | None = Field(
        default=None, description="levels whose accuracy-vs-iteration curves are drawn; "
        "default: a few spread levels (the first, some middle ones, the last)")
    control_levels: list[int] | None = Field(
        default=None, description="levels whose controls are drawn beside the ticket in "
        "accuracy_vs_iteration (the paper's Figure 3); default: the sparsest drawn level; "
        "[] draws none")
    formats: list[Literal["png", "pdf", "svg"]] = Field(
        default_factory=lambda: ["png", "pdf"],
        description="file formats of every figure (png for screens, pdf or svg for papers)")
    style: Literal["paper", "talk"] = Field(
        default="paper", description="paper: small fonts for a printed column; talk: larger "
        "fonts and thicker lines for slides")
    dpi: int = Field(default=150, ge=50, le=1200, description="resolution of png figures")
    width: float = Field(default=6.5, gt=1, le=30, description="figure width in inches")
    confidence: float = Field(default=0.95, gt=0.5, lt=1,
                              description="confidence level of the intervals")
    interval: Literal["t", "bootstrap"] = Field(
        default="t", description="t: Student-t interval of the mean; bootstrap: percentile "
        "bootstrap of the mean (scipy.stats.bootstrap, seeded)")
    test: Literal["t", "wilcoxon"] = Field(
        default="t", description="paired comparison of the ticket with each control over "
        "replicates: t (paired t-test, effect size Cohen's d_z) or wilcoxon (signed-rank "
        "test, effect size the matched-pairs rank-biserial correlation)")

    @field_validator("levels")
    @classmethod
    def _levels_are_levels(cls, levels: list[int] | None) -> list[int] | None:
        if levels is not None and (not levels or any(level < 0 for level in levels)):
            raise ValueError("expected a non-empty list of levels >= 0, or null")
        return levels

    @field_validator("control_levels")
    @classmethod
    def _control_levels_are_levels(cls, levels: list[int] | None) -> list[int] | None:
        if levels is not None and any(level < 1 for level in levels):
            raise ValueError("expected levels >= 1 (controls start at level 1), or null")
        return levels

    @field_validator("formats")
    @classmethod
    def _some_format(cls, formats: list[str]) -> list[str]:
        if not formats:
            raise ValueError("expected at least one of png, pdf, svg")
        return list(dict.fromkeys(formats))

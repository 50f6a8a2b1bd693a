"""lth-suite: Lottery Ticket Hypothesis experiments, declarative and tracked in MLflow."""

__version__ = "0.1.0"

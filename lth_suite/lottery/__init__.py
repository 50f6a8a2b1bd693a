"""The lottery: planning, training and recording each level of an experiment."""

"""How experiments execute: units and their graph, the one entry point, workers, sweeps."""

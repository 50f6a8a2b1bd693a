"""How experiments execute: units and their graph, the driver, sweeps, the entry point."""

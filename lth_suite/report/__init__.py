"""Reports: figures and tables of finished experiments and sweeps, from the store."""

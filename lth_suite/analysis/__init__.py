"""Analyses of tickets read back from the store: mask similarity, shrinking, export."""

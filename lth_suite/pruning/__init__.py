"""Masks and what a level prunes: per-layer targets, the request a criterion receives."""

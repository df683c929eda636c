"""Data sources, splits and the training recipe."""

"""Writing a complete artifacts folder (train end to end) and the docs rendered from it."""

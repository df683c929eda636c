"""Studies of a trained model: cross-validation, protocols, folders, localisation."""

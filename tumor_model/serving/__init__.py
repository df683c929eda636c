"""Using a trained model: prediction, volumes, the guard, explanation maps, overlays."""

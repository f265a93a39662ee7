"""Methods: labels and their configuration, the model, training and its launch, baselines, batched inference."""

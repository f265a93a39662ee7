"""Serving: the ONNX runtime and export, the predictor, the scoring service and proxy, the replay client."""

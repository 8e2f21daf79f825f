"""The progress estimator: model (backbone + head), data (encoded rollouts), inference (c_t)."""

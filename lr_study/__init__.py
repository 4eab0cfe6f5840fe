"""lr_study: learning-rate and batch-size schedule studies in JAX, Optax and Flax."""

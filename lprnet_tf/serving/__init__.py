"""TensorFlow Serving-compatible REST server (:mod:`.server`) and clients (:mod:`.client`)."""

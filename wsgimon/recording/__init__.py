"""From raw request records to what the store keeps, off the request thread.

The recorder folds records (naming endpoints, redacting, fingerprinting failures into issues)
and the flusher writes them; the sampler takes stack samples of slow requests.
"""

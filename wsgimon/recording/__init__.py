"""From raw request records to what the store keeps, off the request thread.

The fold (:mod:`.fold`) names endpoints, redacts, fingerprints failures into issues; the
recorder writes the batches and keeps what the store refused; the flusher runs every recorder
of the process; the sampler takes stack samples of slow requests.
"""

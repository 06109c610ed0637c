"""What the recorded numbers mean: aggregates and their sketch, time windows, SLOs, releases
compared, the lifecycle of issues and the profiles of slow requests. No threads; a function
that reads the store is handed it."""

"""What the recorded numbers mean: fingerprints of failures and the lifecycle of the issues they make."""

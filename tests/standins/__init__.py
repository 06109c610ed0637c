"""Real local servers that stand in for outside services (Discord, a webhook receiver, SMTP) in tests."""

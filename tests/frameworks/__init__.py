"""One small app per framework (Django, Bottle, Falcon, Pyramid), the same routes in each, and their tests."""

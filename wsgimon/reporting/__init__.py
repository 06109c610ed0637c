"""The weekly (or daily) report: what it says (:mod:`.report`), and when it goes (:mod:`.schedule`)."""

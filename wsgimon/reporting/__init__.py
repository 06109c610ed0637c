"""The weekly (or daily) report: its period (:mod:`.period`), what it says (:mod:`.report`,
:mod:`.sections`), and when it goes (:mod:`.schedule`)."""

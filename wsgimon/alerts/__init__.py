"""Alerting: rules decide, the store makes it once per deployment, the dispatcher delivers.

``model`` (what an alert is), ``settings`` (channels from the configuration),
``rules`` (when something is worth telling), ``dispatcher`` (a bounded queue and
one background thread with retries), one module per channel (``discord``,
``webhook``, ``email``), and ``engine`` (the process's alerting, tying them to
the recorder and the store). ``import wsgimon`` imports none of the channels.
"""

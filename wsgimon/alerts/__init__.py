"""Alerting: rules read, the store decides once per deployment, the dispatcher delivers.

``rules`` (verdicts: what is true now), ``state`` and ``incidents`` (the deployment's
conditions, incidents and silences, and the pure decision over them), ``messages`` (a notice
as text), ``dispatcher`` (a lane per channel, retries under a deadline), one module per
channel (``discord``, ``webhook``, ``email`` with ``smtp``), ``channels`` (channels from the
options), and ``engine`` (the process's alerting, tying them to the recorder and the store).
``import wsgimon`` imports none of the channels.
"""

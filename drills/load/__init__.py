"""Load: Locust as a subprocess, the built-in locustfiles, and the records they write.

Modules: `drills.load.runner` (start/stop Locust, read its records; never imports Locust),
`drills.load.records` (record files: writer used by locustfiles, readers used by the harness),
`drills.load.outcome` (HTTP result -> history completion type), `drills.load.pacing` (when a
user sends next: constant throughput, write bursts, retry backoff), `drills.load.videos` (the
known and hot videos users target), `drills.load.mix` (users per operation class),
``locustfiles/`` (run inside Locust only). This package imports nothing on its own, so a
locustfile importing `drills.load.records` under gevent pulls in no harness code.
"""

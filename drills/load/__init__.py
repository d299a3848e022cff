"""Load: Locust as a subprocess, the recording shim beside any locustfile, and the records.

Modules: `drills.load.runner` (start/stop Locust, read its records; never imports Locust),
`drills.load.records` (record files: writer used inside Locust, readers used by the harness),
`drills.load.outcome` (HTTP result -> history completion type), `drills.load.pacing` (when a
user sends next: constant throughput, write bursts, retry backoff), `drills.load.keys` (the
known and hot keys users target), ``locustfiles/recording.py`` (the shim; runs inside Locust
only). A locustfile records its history through `drills.record`. This package imports nothing
on its own, so a locustfile importing its helpers under gevent pulls in no harness code.
"""

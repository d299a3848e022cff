"""Stacks: where the system under test runs (local processes or a docker Compose project)."""

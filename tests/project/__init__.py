"""Tests of the whole project: docs, README, first run, scaffolds, layers,
exports and the original library's behaviour."""

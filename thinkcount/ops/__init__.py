"""Operational commands: the regression gate, profiles as DVC experiments, the CI profile, the seed sweep."""

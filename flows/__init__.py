"""The flow model: YAML read with lines, the typed model, the loader and validator, the paths
report, the published versions; and KccError, the base of every domain error. Runs nothing."""

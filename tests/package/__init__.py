"""The package root's modules and what crosses every folder: layout, registry, errors, wheel, old formats."""

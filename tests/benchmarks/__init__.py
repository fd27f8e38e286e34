"""The scripts under benchmarks/ that print the documented figures: they run, and their arithmetic holds."""

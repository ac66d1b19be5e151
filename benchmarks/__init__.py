"""Speed measurements: each script prints ratios measured side by side in one run."""

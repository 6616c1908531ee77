"""Samples and datasets: image reading, MVTec-style folders, plain folders, synthetic generators."""

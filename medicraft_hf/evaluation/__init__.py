"""Evaluation of OCT datasets: usefulness, fidelity, privacy and anatomical plausibility."""

"""Tools around the product: benchmarks, stress clips, the privacy oracle (verify), doctor, evaluation."""

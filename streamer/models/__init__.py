"""Network definitions fawn builds itself (the diffusion anonymizer's modules and their I/O specs), below export/ and the engines' callers."""

"""Identity per track: ArcFace embeddings, face alignment, the gallery, enrolment, the resolver."""

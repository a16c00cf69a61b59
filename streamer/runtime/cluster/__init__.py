"""``fawn batch``: anonymize a footage collection on a Ray cluster.

- :mod:`.uris`: local/shared folders and fsspec URIs (listing, checksums, atomic names).
- :mod:`.manifest`: the JSONL manifest (audit, resume, config hash).
- :mod:`.worker`: one model session per worker that anonymizes whole files.
- :mod:`.job`: the Ray driver (actors, retries, dead workers, progress, summary).
- :mod:`.cli`: the ``fawn batch`` sub-command.

Ray and fsspec are optional (``pip install 'fawn[ray]'``) and imported lazily.
"""

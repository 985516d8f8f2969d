"""Releasing a model: the model card (:mod:`.card`), the release audit (:mod:`.audit`) and the
upload to the Hugging Face Hub (:mod:`.hub`). ``argonne-kit export``, ``audit`` and ``push``
are their command-line faces."""

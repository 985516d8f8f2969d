"""Token data in the core: the bin shard format, manifests, tokenizer loading and preprocessing.

Data knows tokens, not models. The data-source plugins (``argonne_plugins.data``) build on this."""

"""One module per page: ``register_page``, a ``layout`` of the URL's query values, ``register_callbacks``."""

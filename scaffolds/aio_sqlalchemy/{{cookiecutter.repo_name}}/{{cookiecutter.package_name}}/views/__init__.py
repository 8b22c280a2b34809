"""The views: ``config.scan(".views")`` in ``main`` finds them."""

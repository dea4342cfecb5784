"""Inference algorithms; users call them through :func:`gmmkit.fit`."""

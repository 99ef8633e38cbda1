"""``unitscope serve``: a local web app over finished runs — their reports and unit pages, ``compare`` between
them, and an upload form that shows what one forward pass sees in an image (scene, objects, the units behind them).
"""

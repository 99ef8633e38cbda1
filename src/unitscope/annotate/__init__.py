"""Human unit semantics (Zhou et al. 2015, §3): a local annotation app on the paper's Mechanical Turk protocol.

Per unit an annotator sees 60 images (57 top images with the unit's region, 3 hidden catch images), writes
a concept, unticks the images that do not show it and picks one of six categories. The answers live in an
SQLite store; :mod:`~unitscope.annotate.matfile` reads and writes the authors' released ``.mat`` layout.
"""

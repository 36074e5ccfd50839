"""sdnet: Deep Networks with Stochastic Depth as a reproducible Snakemake pipeline.

Importing the package is cheap (no torch): the Snakemake layer imports `sdnet.spec` at parse time.
"""

__version__ = "0.1.0"

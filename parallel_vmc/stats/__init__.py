"""Statistics of Monte Carlo series, numpy only: automated blocking, the integrated
autocorrelation time, the block bootstrap and many-chain summaries with split R-hat.
Used by the run's own summary and by the offline ``analysis`` package."""

"""Hessian spectra of a classifier's loss: products, Lanczos, trace, density and outliers (DESIGN.md §6).

Modules, each a pure numerical piece:

- :mod:`.hvp`: the Hessian of the mean cross-entropy over an evaluation set as a matrix-free operator
  (``torch.func`` forward-over-reverse or double backward), optionally restricted to unpruned coordinates;
- :mod:`.lanczos`: largest and most negative eigenvalues with residual norms;
- :mod:`.trace`: Hutchinson and Hutch++ trace estimates with standard errors;
- :mod:`.density`: stochastic Lanczos quadrature densities with Gaussian broadening;
- :mod:`.outliers`: the bulk edge at the largest relative gap;
- :mod:`.analysis`: all of them in one call, as the ``hessian`` analysis runs them.
"""

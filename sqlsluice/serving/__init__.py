"""The composition root: what ``sluice serve`` puts together.

The wire layer (:mod:`sqlsluice.middleware`) knows PostgreSQL's protocol and the backends,
never the engines; the engines (:mod:`sqlsluice.rewriters`, :mod:`sqlsluice.text2sql`,
:mod:`sqlsluice.routers`, :mod:`sqlsluice.verifiers`) know SQL and databases, never the
wire.  This package joins them:

* :mod:`~sqlsluice.serving.pipeline`: the product's statement pipeline for one database
  (sluice settings, ASK, online rewriting, forward);
* :mod:`~sqlsluice.serving.rewrite_stage` and :mod:`~sqlsluice.serving.ask_stage`: the
  engines as pipeline stages;
* :mod:`~sqlsluice.serving.lifecycle`: :func:`serve`, signals, reload, shutdown;
* :mod:`~sqlsluice.serving.metrics`: ``/metrics``, ``/healthz``;
  :mod:`~sqlsluice.serving.web`: the web console;
* :mod:`~sqlsluice.serving.demo`: the embedded demo database.
"""

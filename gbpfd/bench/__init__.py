"""The benchmark suite behind ``gbpfd bench``: the cases live in the
repository's ``bench/`` folder (one module each); this package runs them in
one process, keeps one JSON record per run, draws the plots and renders
``docs/results.md`` from the committed records."""

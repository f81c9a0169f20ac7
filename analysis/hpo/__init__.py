"""Hyper-parameter optimisation (chapters/hpo.qmd), one small module per idea.

* :mod:`~analysis.hpo.gp`: a Gaussian-process posterior in NumPy, written from
  the chapter's derived formulas (eq-hpo-gp-posterior), with the Matérn 5/2
  kernel that keras-tuner's Bayesian oracle uses;
* :mod:`~analysis.hpo.acquisition`: probability of improvement, expected
  improvement and the confidence bound (eq-hpo-pi, -ei, -ucb);
* :mod:`~analysis.hpo.tpe`: the tree-structured Parzen estimator's l/g
  criterion (eq-hpo-tpe-ei);
* :mod:`~analysis.hpo.order_stats`: the exact distribution of the best of N
  configurations drawn from a trained pool (random-search efficiency curves);
* :mod:`~analysis.hpo.spaces`: search spaces, their validation and encoding;
* :mod:`~analysis.hpo.tabular`: searches that look scores up in a trained
  table instead of training (the tabular benchmark);
* :mod:`~analysis.hpo.tuners`: keras-tuner searches as named, resumable units.

Nothing here reads a test set: every search chooses on validation scores.
"""

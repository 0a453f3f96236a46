"""Meta-learning for fast adaptation to a new market (Reptile, first-order MAML).

``python -m grandmodel.meta`` meta-trains one role's learner over a family of synthetic markets
(:class:`~grandmodel.meta.system.MetaSystem`); ``python -m grandmodel.adapt`` fine-tunes that
initialisation on a new market's training split and evaluates it on the rest.
"""

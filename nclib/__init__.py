"""nclib: the support library of the executable book on Gao et al., "Towards Demystifying the
Generalization Behaviors When Neural Collapse Emerges" (arXiv 2310.08358).

Conventions (ARCHITECTURE.md): features ``Z`` are N×d, labels ``y`` are int64 in [0, C), a classifier
``M`` is d×C whose columns are the class vectors M_y, and logits are ``Z @ M``. Metrics compute in
float64.
"""

__version__ = "0.1.0"

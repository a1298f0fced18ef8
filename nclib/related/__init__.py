"""The related results of chapter 9: Zhu et al. (2021), Jacot et al. (2024), Wu & Mondelli (2025).

One module per paper, then what the chapter builds on them:

- :mod:`nclib.related.zhu`: Zhu et al. 2021, the UFM with weight decay and the fixed-ETF classifier.
- :mod:`nclib.related.jacot`: Jacot et al. 2024, balancedness and networks ending in linear layers.
- :mod:`nclib.related.wu_mondelli`: Wu & Mondelli 2025, a three-layer mean-field network on mixtures.
- :mod:`nclib.related.batched`: what the two batched trainers share (stacking, one heavy-ball step).
- :mod:`nclib.related.decisions`: one Verdict per claim (``decide_*``) and the PRECEDENCE combining them.
- :mod:`nclib.related.figures`: the chapter's figures (``plot_*``), in the style of :mod:`nclib.plots`.

Every public name the chapter and the tests use is re-exported here, so that
``from nclib import related; related.ufm_wd_loss(...)`` works.
"""

from nclib.related import batched, decisions, figures, jacot, wu_mondelli, zhu
from nclib.related.decisions import *  # noqa: F403  (each module's __all__ is the list)
from nclib.related.figures import *  # noqa: F403
from nclib.related.jacot import *  # noqa: F403
from nclib.related.wu_mondelli import *  # noqa: F403
from nclib.related.zhu import *  # noqa: F403

__all__ = [*zhu.__all__, *jacot.__all__, *wu_mondelli.__all__, *decisions.__all__, *figures.__all__]

"""The simulated taste world: real photos x recorded edits, simulated raters with PARA-style profiles.

The only place in this project where learning can be measured (no real PIAA images/ratings ship with it). Every
number derived from it is *simulated*. The generative model is documented in ``eval/sim/SIM.md``. Product code
(pmllm, taskvec, the demo) never imports this package; it reads world folders through ``piaa.worlds``.

* ``build`` - :func:`build_world` writes a world folder; ``images`` - recorded edits and pixel attributes;
  ``raters`` - tastes, profiles, scores, databases; ``text`` - the raters' free text; ``world`` - :class:`SimWorld`
  (a loaded world with its oracle). ``python -m eval.sim --out DIR [--quick] [--seed N] [--photos DIR]`` builds one.

Python API (the harness imports it)::

    from eval.sim import load_world, ensure_world
    world = load_world(ensure_world(quick=True))
    bench = world.benchmark()                 # eval.api.Benchmark(name="sim", simulated=True, oracle=world.oracle)
    world.oracle("u000", ["piaa_00001.jpg"])  # noise-free scores on the PARA scale
"""

from .build import (
    SIZES,
    WorldSize,
    build_world,
    feature_space,
    format_decomposition,
    simulate_raters,
    variance_decomposition,
)
from .world import SimWorld, default_world_dir, ensure_world, load_world

__all__ = [
    "SIZES", "SimWorld", "WorldSize", "build_world", "default_world_dir", "ensure_world", "feature_space",
    "format_decomposition", "load_world", "simulate_raters", "variance_decomposition",
]  # fmt: skip

"""The pytest plugin: tiers, GPU gating, fixtures, timing, xdist pinning and hand-off.

``mltest.harness.plugin`` is the ``pytest11`` entry point. It only adds options and, when the
project has opted in, registers :class:`mltest.harness.session.MltestSession`. A recording session
journals each test and leaves the store to a writer process (:mod:`mltest.harness.writer`), which
opens the store while pytest collects and runs the tests.
"""

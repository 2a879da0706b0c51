"""Real-engine tests on private Swarms (their own dockerds): the ``service`` kind, the
stack, the fixture. A package of its own so that they run in the suite's second process,
beside the first's tests of the shared engine (docs/testing.md, "The suite's time")."""

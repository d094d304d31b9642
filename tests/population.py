"""The simulated population every stream test draws from: trains in about a second."""

from fraudstream.simulator.generator import SimulationConfig

TEST_POPULATION = SimulationConfig(customers=300, terminals=600, days=40, seed=7)

"""Training precisions a torch model may ask for: a name list with no dependency, shared
by the torch base (`harness.torch`, which validates it) and the engine that applies it
(`harness.sdk.neural.accel`), so that neither imports the other for it."""

PRECISIONS = ("auto", "fp32", "bf16")

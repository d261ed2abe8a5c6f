"""gdflows numeric layer (JAX): simulations of GD, gradient flow, modified flow and central flow.

The engine arrives with the next issue; this package currently only reserves the import name.
"""

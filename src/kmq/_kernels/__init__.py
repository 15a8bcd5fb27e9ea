"""Compiled kernels (numba). Private: call them through the checked public modules.

Every kernel takes contiguous arrays of fixed dtypes and no Python objects; each one has a slow
pure-NumPy twin in ``tests/naive.py`` that the test suite compares it with.
"""

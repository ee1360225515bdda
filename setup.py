"""Only the optional C accelerator lives here; everything else is in pyproject.toml.

optional=True: without a compiler the build still succeeds and sshrec uses its pure-Python
encoder (same output, slower), see schema/asciicast.py.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("sshrec.schema._fastcast", ["schema/_fastcast.c"], optional=True)])

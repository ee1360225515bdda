"""Only the optional C extensions live here; everything else is in pyproject.toml.

optional=True: without a compiler the build still succeeds and sshrec uses its pure-Python
paths: the encoder (same output, slower, schema/asciicast.py), the relay's burst loop
(recorder/burst.py), and without _proctl the destination watch finds orphaned processes by
scanning /proc (recorder/watch.py).
"""

from setuptools import Extension, setup

setup(ext_modules=[
    Extension("sshrec.schema._fastcast", ["schema/_fastcast.c"], optional=True),
    Extension("sshrec.recorder._proctl", ["recorder/_proctl.c"], optional=True),
    Extension("sshrec.recorder._burst", ["recorder/_burst.c"], optional=True),
])

"""The compiled part of kshock: the lane for the common packet (kshock/wire/_lane.pyx, its state
declared in _lane.pxd, which cythonize reads with it), used by Sniffer.feed and
`kshock decode --json`.

Everything else is in pyproject.toml. The extension is optional: without a C compiler and
Python's headers (Debian: gcc libc6-dev python3-dev, which `make setup` installs) kshock
still installs and decodes through its pure-Python path, which gives the same output.
"""

from Cython.Build import cythonize
from setuptools import Extension, setup

setup(ext_modules=cythonize(
    # -ffp-contract=off: a pcap timestamp is sec + frac * unit rounded twice, as Python rounds it;
    # a fused multiply-add (GCC's default on aarch64) would round once and differ in the last bit
    [Extension("kshock.wire._lane", ["kshock/wire/_lane.pyx"], optional=True,
               extra_compile_args=["-ffp-contract=off"])],
    compiler_directives={"language_level": 3},
    quiet=True,
))

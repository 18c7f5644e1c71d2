"""Build of the optional C kernel of the measures (everything else is in pyproject.toml).

``app.measures._kernel`` fuses the per-row work of the O(n·d) passes (see its source). It is
optional: without a C compiler the install still succeeds and the measures use their NumPy
path, with the same results (``app.measures.kernel_info()`` says which one runs).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "app.measures._kernel",
            sources=["app/measures/_kernel.c"],
            extra_compile_args=["-O3", "-std=c11"],
            optional=True,
        )
    ]
)

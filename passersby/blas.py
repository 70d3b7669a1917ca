"""numpy's BLAS thread pool, limited for the small matrices this project multiplies.

The taste model, the direction probes and the ledger's projections work on matrices of a few
hundred rows at most: OpenBLAS's threads gain nothing there, and while the renderers keep both
cores busy its spinning threads stall every product (measured here: seconds instead of ms).
"""

from __future__ import annotations


def limit_blas_threads(n: int = 1) -> bool:
    """Ask numpy's OpenBLAS to use `n` threads in this process; False if it cannot be found.

    The taste model works on small matrices (~129 x 129): OpenBLAS's thread pool gains nothing
    there, and its spinning threads fight the renderer for the cores. Measured on this 2-core
    machine under load: `evaluate` on 200 ratings 5.0 s with the default threads, 0.37 s with
    one. Process-wide, like torch.set_num_threads; Linux only (reads /proc/self/maps).

    Example:
        >>> limit_blas_threads(1)  # process-wide: would limit the test run's BLAS threads  # doctest: +SKIP
        True
    """
    import ctypes

    try:
        with open("/proc/self/maps", encoding="utf-8") as f:
            paths = {line.split()[-1] for line in f if "openblas" in line.lower()}
    except OSError:
        return False
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name in ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads",
                     "openblas_set_num_threads64_", "openblas_set_num_threads"):
            setter = getattr(lib, name, None)
            if setter is not None:
                setter(ctypes.c_int(n))
                return True
    return False

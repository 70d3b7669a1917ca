"""passersby: an engine for endless, never-repeating generative portrait installations.

Importing the package has no side effects: no model is loaded, no device is touched.
"""

__version__ = "0.1.0"

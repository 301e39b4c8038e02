"""Built-in plugins, installed as `harness_plugins`.

Each subpackage registers its entries through the `harness` entry-point group, exactly
as a third-party package would; the core imports none of them.
"""

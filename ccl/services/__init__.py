"""Composition roots: one module per twistd plugin, with its ``Options`` and ``makeService``.

The only modules that may import every layer: they build the storage adapters, hand them to
the application's use cases and those to the network adapters, in plain sight. Nothing
imports a module of this package except the plugin files under ``twisted/plugins/``.
"""

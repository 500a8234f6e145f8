"""Generators: data descriptions become flows, through pluggy plugins."""

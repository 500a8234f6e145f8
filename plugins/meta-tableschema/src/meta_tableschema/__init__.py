"""meta-tableschema: Frictionless Data Packages become flows that check their CSVs.

`meta_tableschema.plugin` is the plugin module; `meta_tableschema.check` and
`meta_tableschema.report` are the steps of the flows it generates (standard library only).
"""

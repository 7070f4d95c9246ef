"""Griffe extension: the scikit-learn estimators' ``__init__`` is built at import from their model's config
(``vaelab.sklearn._init_with``), so the reference takes each estimator's signature from the imported class."""

from __future__ import annotations

import importlib
import inspect

import griffe

MODULE = "vaelab.sklearn"


class EstimatorSignatures(griffe.Extension):
    def on_class_members(self, *, cls: griffe.Class, **kwargs) -> None:
        if cls.module.path != MODULE or cls.name.startswith("_"):
            return
        signature = inspect.signature(getattr(importlib.import_module(MODULE), cls.name).__init__)
        parameters = griffe.Parameters(
            *(
                griffe.Parameter(
                    p.name,
                    kind=griffe.ParameterKind(p.kind.description),
                    default=None if p.default is p.empty else repr(p.default),
                )
                for p in signature.parameters.values()
            )
        )
        cls.set_member("__init__", griffe.Function("__init__", parameters=parameters))

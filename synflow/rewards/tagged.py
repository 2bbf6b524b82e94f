"""Unions of pydantic models tagged by a ``type`` field, with error paths free of the tag.

pydantic's discriminated unions put the tag into every error location
(``components.2.qed.transform.sigmoid.low``). The service reports errors by field path, so these
unions dispatch on ``type`` themselves and errors read ``components.2.transform.low``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError


def _type_error(value: Any, choices: list[str]) -> ValidationError:
    detail = InitErrorDetails(
        type=PydanticCustomError(
            "union_tag_invalid",
            "'type' must be one of {expected}, got {tag}",
            {"expected": ", ".join(repr(c) for c in choices), "tag": repr(value)},
        ),
        loc=("type",),
        input=value,
    )
    return ValidationError.from_exception_data("type", [detail])


def tagged_validator(
    models: Callable[[], Mapping[str, type[BaseModel]]],
) -> Callable[[Any, Any], BaseModel]:
    """A pydantic wrap-validator that picks the model named by ``value["type"]``.

    ``models`` is called at validation time, not when the union is declared.
    """

    def validate(value: Any, handler: Any) -> BaseModel:
        mapping = models()
        if isinstance(value, BaseModel):
            if isinstance(value, tuple(mapping.values())):
                return value
            value = value.model_dump()
        if not isinstance(value, Mapping):
            raise PydanticCustomError("model_type", "expected an object with a 'type' field")
        tag = value.get("type")
        model = mapping.get(tag) if isinstance(tag, str) else None
        if model is None:
            raise _type_error(tag, sorted(mapping))
        return model.model_validate(value)

    return validate

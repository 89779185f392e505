"""ModelSpec's memoised hash keeps pydantic's frozen-model semantics (vramcalc.spec.model.__hash__)."""

from __future__ import annotations

import copy
import gc
import pickle

from vramcalc import get_model
from vramcalc.spec.model import _HASHES, ModelSpec


def _field_values_hash(spec: ModelSpec) -> int:
    # pydantic's own rule for a frozen model: the hash of the field values, in declaration order
    return hash(tuple(getattr(spec, name) for name in ModelSpec.model_fields))


def test_hash_is_pydantics_and_equal_specs_hash_equal() -> None:
    a = get_model("llama-2-7b")
    b = ModelSpec.model_validate(a.model_dump(by_alias=True))
    assert a is not b and a == b
    assert hash(a) == hash(b) == _field_values_hash(a)
    assert hash(a) == hash(a)  # the memo answers the same
    assert a.__dict__.keys() == b.__dict__.keys()  # nothing stored on the instance


def test_copies_with_changes_hash_their_own_fields() -> None:
    a = get_model("llama-2-7b")
    hash(a)
    c = a.model_copy(update={"num_layers": 31})  # shallow copy of a hashed instance
    assert c != a
    assert hash(c) == _field_values_hash(c) != hash(a)
    for other in (copy.copy(a), copy.deepcopy(a), pickle.loads(pickle.dumps(a))):
        assert other == a and hash(other) == hash(a)


def test_memo_entries_leave_with_their_instance() -> None:
    a = get_model("llama-2-7b")
    spare = a.model_copy(update={"num_layers": 30})
    hash(spare)
    key = id(spare)
    assert key in _HASHES
    del spare
    gc.collect()
    assert key not in _HASHES

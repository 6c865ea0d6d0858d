from __future__ import annotations

import pytest

from engine.ids import InvocationId, hashed_partition_key, new_deployment_id, random_partition_key


def test_invocation_id_embeds_its_partition_key() -> None:
    key = random_partition_key()
    invocation_id = InvocationId.new(key)
    assert invocation_id.startswith("inv_1")
    assert len(invocation_id) == 38  # the length of the real server's ids
    assert invocation_id.partition_key == key
    assert InvocationId.parse(str(invocation_id)) == invocation_id


def test_raw_form_is_partition_key_then_uuid() -> None:
    invocation_id = InvocationId.new(0x0102030405060708)
    raw = invocation_id.to_bytes()
    assert len(raw) == 24
    assert raw[:8] == bytes([1, 2, 3, 4, 5, 6, 7, 8])


def test_parses_an_id_of_the_real_server() -> None:
    parsed = InvocationId.parse("inv_1aa1LyPnHJpL568xSKLK7vM8UTxeih7Nae")
    assert parsed.partition_key < 2**64
    assert len(parsed.to_bytes()) == 24


@pytest.mark.parametrize(
    "text", ["", "inv_1", "inv_2aa1LyPnHJpL568xSKLK7vM8UTxeih7Nae", "inv_1aa1LyPnHJpL568xSKLK7vM8UTxeih7Na!", "x" * 38]
)
def test_rejects_malformed_ids(text: str) -> None:
    with pytest.raises(ValueError):
        InvocationId.parse(text)


def test_extreme_partition_keys_round_trip() -> None:
    for key in (0, 1, 2**64 - 1):
        assert InvocationId.new(key).partition_key == key


def test_hashed_partition_keys_are_stable_and_spread() -> None:
    assert hashed_partition_key("Counter", "k1") == hashed_partition_key("Counter", "k1")
    assert hashed_partition_key("Counter", "k1") != hashed_partition_key("Counter", "k2")
    # Separator keeps ("a", "bc") apart from ("ab", "c").
    assert hashed_partition_key("a", "bc") != hashed_partition_key("ab", "c")
    partitions = {hashed_partition_key("Counter", f"k{i}") % 8 for i in range(200)}
    assert partitions == set(range(8))


def test_deployment_ids_are_unique() -> None:
    ids = {new_deployment_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(i.startswith("dp_") for i in ids)


def test_a_scope_is_part_of_the_identity_and_owns_the_partition() -> None:
    scope_key = InvocationId.for_target("Greeter", None, scope="s1").partition_key
    assert InvocationId.for_target("Counter", "k", scope="s1").partition_key == scope_key
    assert InvocationId.for_workflow("Signup", "wf1", "s1").partition_key == scope_key
    assert InvocationId.for_workflow("Signup", "wf1", "s1") != InvocationId.for_workflow("Signup", "wf1")
    assert InvocationId.for_workflow("Signup", "wf1", "s1") != InvocationId.for_workflow("Signup", "wf1", "s2")
    scoped = InvocationId.for_idempotent("Greeter", None, "greet", "ik", "s1")
    assert scoped != InvocationId.for_idempotent("Greeter", None, "greet", "ik")
    assert scoped == InvocationId.for_idempotent("Greeter", None, "greet", "ik", "s1")  # deterministic
    # Unscoped ids are what they always were (stored workflow ids and idempotency keys stay valid).
    assert InvocationId.for_workflow("Signup", "wf1") == "inv_1kfPHhhLeZAP5fygBJNKXHRCwdJPoLfrTm"


def test_scoped_objects_have_their_own_keys() -> None:
    from engine.storage import keys

    plain, scoped = keys.object_key(3, "Signup", "wf1"), keys.object_key(3, "Signup", "wf1", "s1")
    assert plain != scoped and not scoped.startswith(plain) and not plain.startswith(scoped)
    assert keys.parse_state_key(keys.state_key(scoped, b"email")) == ("s1", "Signup", "wf1", b"email")
    assert keys.parse_state_key(keys.state_key(plain, b"email")) == (None, "Signup", "wf1", b"email")

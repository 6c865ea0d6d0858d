from __future__ import annotations

import random

import pytest
from google.protobuf import descriptor_pb2
from google.protobuf.message import Message

from engine.protocol import (
    HEADER_SIZE,
    MESSAGE_CLASSES,
    MESSAGE_TYPES,
    REQUESTED_ACK,
    Frame,
    FrameDecoder,
    MessageType,
    ProtocolError,
    content_type,
    decode_frames,
    encode_message,
    encode_raw,
    is_command,
    is_control,
    is_custom,
    is_notification,
    parse_content_type,
    pb,
)
from engine.protocol.codec import encode_input_command

T = MessageType


def _failure(code: int = 500, message: str = "boom") -> pb.Failure:
    return pb.Failure(code=code, message=message, metadata=[pb.FailureMetadata(key="k", value="v")])


# One non-trivial instance per type id: oneofs set, optional fields present,
# nested messages populated, so a wrong field number or type cannot round-trip.
SAMPLES: dict[MessageType, Message] = {
    T.START: pb.StartMessage(
        id=bytes(range(24)),
        debug_id="inv_1aa1LyPnHJpL568xSKLK7vM8UTxeih7Nae",
        known_entries=4,
        state_map=[pb.StartMessage.StateEntry(key=b"v", value=b"3"), pb.StartMessage.StateEntry(key=b"e")],
        partial_state=True,
        key="c1",
        retry_count_since_last_stored_entry=2,
        duration_since_last_stored_entry=1772,
        random_seed=2**63 + 5,
        scope="s",
        limit_key="lk",
        idempotency_key="ik",
    ),
    T.SUSPENSION: pb.SuspensionMessage(
        waiting_completions=[1, 2],
        waiting_signals=[17, 1],
        waiting_named_signals=["n"],
        awaiting_on=pb.Future(
            waiting_completions=[3],
            nested_futures=[pb.Future(waiting_signals=[1, 2], combinator_type=pb.FIRST_COMPLETED)],
            combinator_type=pb.ALL_SUCCEEDED_OR_FIRST_FAILED,
        ),
    ),
    T.ERROR: pb.ErrorMessage(
        code=571,
        message="ValueError('retry me')",
        stacktrace="Traceback ...",
        related_command_index=0,
        related_command_name="count",
        related_command_type=0x0411,
        next_retry_delay=0,
        behavior=pb.PAUSE,
    ),
    T.END: pb.EndMessage(),
    T.COMMAND_ACK: pb.CommandAckMessage(command_index=7),
    T.PROPOSE_RUN_COMPLETION: pb.ProposeRunCompletionMessage(result_completion_id=1, failure=_failure()),
    T.AWAITING_ON: pb.AwaitingOnMessage(
        awaiting_on=pb.Future(waiting_completions=[1], waiting_signals=[1], combinator_type=pb.FIRST_COMPLETED),
        executing_side_effects=True,
    ),
    T.PROPOSE_RUN_COMPLETION_ACK: pb.ProposeRunCompletionAckMessage(completion_id=1),
    T.INPUT_COMMAND: pb.InputCommandMessage(
        headers=[pb.Header(key="x-restate-ingress-path", value="/Greeter/greet")],
        value=pb.Value(content=b'"world"'),
        name="input",
    ),
    T.OUTPUT_COMMAND: pb.OutputCommandMessage(failure=_failure(409, "cancelled"), name="out"),
    T.GET_LAZY_STATE_COMMAND: pb.GetLazyStateCommandMessage(key=b"v", result_completion_id=1, name="g"),
    T.SET_STATE_COMMAND: pb.SetStateCommandMessage(key=b"v", value=pb.Value(content=b"3"), name="s"),
    T.CLEAR_STATE_COMMAND: pb.ClearStateCommandMessage(key=b"v", name="c"),
    T.CLEAR_ALL_STATE_COMMAND: pb.ClearAllStateCommandMessage(name="ca"),
    T.GET_LAZY_STATE_KEYS_COMMAND: pb.GetLazyStateKeysCommandMessage(result_completion_id=2, name="k"),
    T.GET_EAGER_STATE_COMMAND: pb.GetEagerStateCommandMessage(key=b"v", value=pb.Value(content=b"")),
    T.GET_EAGER_STATE_KEYS_COMMAND: pb.GetEagerStateKeysCommandMessage(value=pb.StateKeys(keys=[b"a", b""])),
    T.GET_PROMISE_COMMAND: pb.GetPromiseCommandMessage(key="confirm", result_completion_id=1, name="p"),
    T.PEEK_PROMISE_COMMAND: pb.PeekPromiseCommandMessage(key="confirm", result_completion_id=2),
    T.COMPLETE_PROMISE_COMMAND: pb.CompletePromiseCommandMessage(
        key="confirm", completion_value=pb.Value(content=b"yes"), result_completion_id=1
    ),
    T.SLEEP_COMMAND: pb.SleepCommandMessage(wake_up_time=1_750_000_000_000, result_completion_id=1),
    T.CALL_COMMAND: pb.CallCommandMessage(
        service_name="Counter",
        handler_name="add",
        parameter=b"2",
        headers=[pb.Header(key="a", value="b")],
        key="k1",
        idempotency_key="ik",
        scope="sc",
        limit_key="lk",
        invocation_id_notification_idx=1,
        result_completion_id=2,
        name="call",
    ),
    T.ONE_WAY_CALL_COMMAND: pb.OneWayCallCommandMessage(
        service_name="Counter",
        handler_name="add",
        parameter=b"1",
        invoke_time=1_750_000_001_000,
        headers=[pb.Header(key="a", value="b")],
        key="k2",
        idempotency_key="ik",
        scope="sc",
        limit_key="lk",
        invocation_id_notification_idx=3,
        name="send",
    ),
    T.SEND_SIGNAL_COMMAND: pb.SendSignalCommandMessage(
        target_invocation_id="inv_1x", idx=1, void=pb.Void(), entry_name="cancel"
    ),
    T.RUN_COMMAND: pb.RunCommandMessage(result_completion_id=1, name="count"),
    T.ATTACH_INVOCATION_COMMAND: pb.AttachInvocationCommandMessage(
        idempotent_request_target=pb.IdempotentRequestTarget(
            service_name="Greeter", service_key="", handler_name="greet", idempotency_key="ik", scope="sc"
        ),
        result_completion_id=4,
    ),
    T.GET_INVOCATION_OUTPUT_COMMAND: pb.GetInvocationOutputCommandMessage(
        workflow_target=pb.WorkflowTarget(workflow_name="Signup", workflow_key="w1", scope="sc"),
        result_completion_id=5,
    ),
    T.COMPLETE_AWAKEABLE_COMMAND: pb.CompleteAwakeableCommandMessage(
        awakeable_id="prom_1abc", value=pb.Value(content=b"ok"), name="aw"
    ),
    T.GET_LAZY_STATE_COMPLETION: pb.GetLazyStateCompletionNotificationMessage(completion_id=1, void=pb.Void()),
    T.GET_LAZY_STATE_KEYS_COMPLETION: pb.GetLazyStateKeysCompletionNotificationMessage(
        completion_id=2, state_keys=pb.StateKeys(keys=[b"a", b"b"])
    ),
    T.GET_PROMISE_COMPLETION: pb.GetPromiseCompletionNotificationMessage(
        completion_id=1, value=pb.Value(content=b"yes")
    ),
    T.PEEK_PROMISE_COMPLETION: pb.PeekPromiseCompletionNotificationMessage(completion_id=2, failure=_failure()),
    T.COMPLETE_PROMISE_COMPLETION: pb.CompletePromiseCompletionNotificationMessage(
        completion_id=1, failure=_failure(409, "already completed")
    ),
    T.SLEEP_COMPLETION: pb.SleepCompletionNotificationMessage(completion_id=1, void=pb.Void()),
    T.CALL_COMPLETION: pb.CallCompletionNotificationMessage(completion_id=2, value=pb.Value(content=b"5")),
    T.CALL_INVOCATION_ID_COMPLETION: pb.CallInvocationIdCompletionNotificationMessage(
        completion_id=1, invocation_id="inv_1aa1LyPnHJpL568xSKLK7vM8UTxeih7Nae"
    ),
    T.RUN_COMPLETION: pb.RunCompletionNotificationMessage(completion_id=1, value=pb.Value(content=b"1")),
    T.ATTACH_INVOCATION_COMPLETION: pb.AttachInvocationCompletionNotificationMessage(
        completion_id=4, failure=_failure(404, "not found")
    ),
    T.GET_INVOCATION_OUTPUT_COMPLETION: pb.GetInvocationOutputCompletionNotificationMessage(
        completion_id=5, void=pb.Void()
    ),
    T.SIGNAL_NOTIFICATION: pb.SignalNotificationMessage(idx=17, value=pb.Value(content=b"body")),
}


def test_samples_cover_every_message_type_and_the_class_map_is_a_bijection() -> None:
    assert set(SAMPLES) == set(MessageType) == set(MESSAGE_CLASSES)
    assert len(MESSAGE_TYPES) == len(MESSAGE_CLASSES)
    for type_id, msg in SAMPLES.items():
        assert MESSAGE_CLASSES[type_id] is type(msg)
        assert MESSAGE_TYPES[type(msg)] is type_id
        if type_id != T.END:
            assert msg.ListFields()


@pytest.mark.parametrize("type_id", list(MessageType), ids=lambda t: t.name)
def test_each_type_round_trips_when_fed_byte_by_byte(type_id: MessageType) -> None:
    msg = SAMPLES[type_id]
    wire = encode_message(msg)
    decoder = FrameDecoder()
    frames: list[Frame] = []
    for i in range(len(wire)):
        frames += decoder.feed(wire[i : i + 1])
        # Nothing may come out before the final byte.
        assert len(frames) == (1 if i == len(wire) - 1 else 0)
    assert decoder.remaining() == 0
    decoder.finish()
    (frame,) = frames
    assert frame.type == type_id and frame.flags == 0
    assert frame.payload == msg.SerializeToString()
    assert frame.parse() == msg


def test_stream_of_many_frames_in_random_chunks() -> None:
    rng = random.Random(1234)
    pool = list(SAMPLES.values())
    sent: list[tuple[int, int, bytes]] = []
    wire = bytearray()
    for _ in range(500):
        if rng.random() < 0.1:
            # Custom entries ride along opaquely; empty payloads must work too.
            item = (0xFC00 + rng.randrange(0x400), 0, rng.randbytes(rng.randrange(3)))
            wire += encode_raw(item[0], item[2])
        else:
            msg = rng.choice(pool)
            flags = REQUESTED_ACK if rng.random() < 0.2 else 0
            item = (MESSAGE_TYPES[type(msg)], flags, msg.SerializeToString())
            wire += encode_message(msg, flags)
        sent.append(item)

    decoder = FrameDecoder()
    frames: list[Frame] = []
    pos = 0
    while pos < len(wire):
        step = rng.choice((1, 2, 7, 8, 9, 64, 333, 4096))
        frames += decoder.feed(bytes(wire[pos : pos + step]))
        pos += step
    decoder.finish()

    assert [tuple(f) for f in frames] == sent
    for frame in frames:
        parsed = frame.parse()
        if is_custom(frame.type):
            assert parsed is None
        else:
            assert parsed == SAMPLES[MessageType(frame.type)]


def test_encode_raw_reframes_stored_payload_identically() -> None:
    msg = SAMPLES[T.CALL_COMMAND]
    payload = msg.SerializeToString()
    assert encode_raw(T.CALL_COMMAND, payload) == encode_message(msg)
    assert encode_raw(T.CALL_COMMAND, payload, REQUESTED_ACK) == encode_message(msg, REQUESTED_ACK)


def test_propose_run_completion_with_ack_header_matches_observed_bytes() -> None:
    msg = pb.ProposeRunCompletionMessage(result_completion_id=1, value=b"1")
    wire = encode_message(msg, REQUESTED_ACK)
    assert wire[:HEADER_SIZE] == bytes.fromhex("0005 8000 0000 0005")
    assert wire[HEADER_SIZE:] == bytes.fromhex("0801 7201 31")
    (frame,) = decode_frames(wire)
    assert frame == Frame(T.PROPOSE_RUN_COMPLETION, REQUESTED_ACK, wire[HEADER_SIZE:])


def test_observed_v6_suspension_payload() -> None:
    msg = Frame(T.SUSPENSION, 0, bytes.fromhex("12021101")).parse()
    assert isinstance(msg, pb.SuspensionMessage)
    assert list(msg.waiting_signals) == [17, 1]
    assert not msg.waiting_completions and not msg.waiting_named_signals
    assert not msg.HasField("awaiting_on")


def test_observed_v7_suspension_payload() -> None:
    payload = bytes.fromhex("220612021101 2801")
    msg = Frame(T.SUSPENSION, 0, payload).parse()
    assert isinstance(msg, pb.SuspensionMessage)
    assert not msg.waiting_signals
    assert msg.awaiting_on == pb.Future(waiting_signals=[17, 1], combinator_type=pb.FIRST_COMPLETED)
    assert msg.SerializeToString() == payload


def test_get_eager_state_void_encoding() -> None:
    msg = pb.GetEagerStateCommandMessage(key=b"v", void=pb.Void())
    assert msg.SerializeToString() == bytes.fromhex("0a0176 6a00")
    parsed = decode_frames(encode_message(msg))[0].parse()
    assert isinstance(parsed, pb.GetEagerStateCommandMessage)
    assert parsed.WhichOneof("result") == "void"


def test_notification_template_reads_any_notification() -> None:
    # Concrete notifications are subsets of the template, so generic code can
    # read their id and result kind without knowing the concrete type.
    for type_id, msg in SAMPLES.items():
        if not type_id.is_notification:
            continue
        template = pb.NotificationTemplate.FromString(msg.SerializeToString())
        assert template.WhichOneof("id") == ("signal_id" if type_id == T.SIGNAL_NOTIFICATION else "completion_id")
        result_field = next(f.name for f, _ in msg.ListFields() if f.number in (4, 5, 6, 16, 17))
        assert template.WhichOneof("result") == result_field


def test_custom_entry_is_framed_and_decoded_opaquely() -> None:
    payload = b"\x01\x02 opaque \xff"
    wire = encode_raw(0xFC01, payload)
    assert wire[:HEADER_SIZE] == bytes.fromhex("fc01 0000 0000000b")
    (frame,) = decode_frames(wire)
    assert frame == Frame(0xFC01, 0, payload)
    assert frame.parse() is None


@pytest.mark.parametrize("type_id", [0x0008, 0x03FF, 0x040F, 0x7FFF, 0x8000, 0x8003, 0xFBFE])
def test_unknown_types_decode_but_refuse_to_parse(type_id: int) -> None:
    frame, end = decode_frames(encode_raw(type_id, b"\x08\x01") + encode_message(pb.EndMessage()))
    assert frame == Frame(type_id, 0, b"\x08\x01")
    assert end.type == T.END  # decoding carries on past the unknown frame
    with pytest.raises(ProtocolError, match=f"0x{type_id:04X}"):
        frame.parse()


def test_malformed_payload_raises_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="RunCommandMessage"):
        Frame(T.RUN_COMMAND, 0, b"\x5a\x05ab").parse()  # string field cut short


def test_encode_message_rejects_unframed_messages() -> None:
    with pytest.raises(TypeError, match="Value"):
        encode_message(pb.Value(content=b"x"))


@pytest.mark.parametrize("cut", [1, HEADER_SIZE - 1, HEADER_SIZE, HEADER_SIZE + 3])
def test_truncated_input_raises(cut: int) -> None:
    # An empty EndMessage frame, then `cut` bytes of a second frame.
    data = (encode_message(SAMPLES[T.END]) + encode_message(SAMPLES[T.RUN_COMMAND]))[: HEADER_SIZE + cut]
    with pytest.raises(ProtocolError, match="stream ended inside a frame"):
        decode_frames(data)
    decoder = FrameDecoder()
    assert [f.type for f in decoder.feed(data)] == [T.END]
    assert decoder.remaining() == cut


def test_frame_size_limit_rejects_bogus_length_before_buffering_it() -> None:
    decoder = FrameDecoder(max_frame_size=1024)
    assert decoder.feed(encode_raw(T.OUTPUT_COMMAND, b"x" * 1024)) != []
    with pytest.raises(ProtocolError, match="above the limit"):
        # An HTML error page read as a header announces an absurd length.
        decoder.feed(b"<html><body>")


def test_type_ranges() -> None:
    assert is_control(0x0000) and is_control(0x03FF) and not is_control(0x0400)
    assert is_command(0x0400) and is_command(0x7FFF) and not is_command(0x8000)
    assert is_notification(0x8000) and is_notification(0xFBFF) and not is_notification(0xFC00)
    assert is_custom(0xFC00) and is_custom(0xFFFF) and not is_custom(0xFBFF)
    for member in MessageType:
        name = type(SAMPLES[member]).__name__
        assert member.is_command == name.endswith("CommandMessage")
        assert member.is_notification == name.endswith("NotificationMessage")


def test_content_types() -> None:
    assert content_type(6) == "application/vnd.restate.invocation.v6"
    assert parse_content_type("application/vnd.restate.invocation.v5") == 5
    assert parse_content_type(" Application/VND.restate.invocation.v7 ; charset=x") == 7
    assert parse_content_type("application/vnd.restate.invocation.v") is None
    assert parse_content_type("application/vnd.restate.invocation.v6x") is None
    assert parse_content_type("application/json") is None


# Wire facts (REFERENCE section 1.5): name=number for every field, with "?" for
# proto3 `optional`. Guards the .proto against edits that would break SDKs.
FIELD_NUMBERS: dict[str, str] = {
    "StartMessage": "id=1 debug_id=2 known_entries=3 state_map=4 partial_state=5 key=6 "
    "retry_count_since_last_stored_entry=7 duration_since_last_stored_entry=8 random_seed=9 "
    "scope=10? limit_key=11? idempotency_key=12?",
    "StartMessage.StateEntry": "key=1 value=2",
    "SuspensionMessage": "waiting_completions=1 waiting_signals=2 waiting_named_signals=3 awaiting_on=4",
    "ErrorMessage": "code=1 message=2 stacktrace=3 related_command_index=4? related_command_name=5? "
    "related_command_type=6? next_retry_delay=8? behavior=9",
    "EndMessage": "",
    "CommandAckMessage": "command_index=1",
    "ProposeRunCompletionMessage": "result_completion_id=1 value=14 failure=15",
    "AwaitingOnMessage": "awaiting_on=1 executing_side_effects=2",
    "ProposeRunCompletionAckMessage": "completion_id=1",
    "Future": "waiting_completions=1 waiting_signals=2 waiting_named_signals=3 nested_futures=4 combinator_type=5",
    "InputCommandMessage": "headers=1 name=12 value=14",
    "OutputCommandMessage": "name=12 value=14 failure=15",
    "GetLazyStateCommandMessage": "key=1 result_completion_id=11 name=12",
    "SetStateCommandMessage": "key=1 value=3 name=12",
    "ClearStateCommandMessage": "key=1 name=12",
    "ClearAllStateCommandMessage": "name=12",
    "GetLazyStateKeysCommandMessage": "result_completion_id=11 name=12",
    "GetEagerStateCommandMessage": "key=1 name=12 void=13 value=14",
    "GetEagerStateKeysCommandMessage": "name=12 value=14",
    "GetPromiseCommandMessage": "key=1 result_completion_id=11 name=12",
    "PeekPromiseCommandMessage": "key=1 result_completion_id=11 name=12",
    "CompletePromiseCommandMessage": "key=1 completion_value=2 completion_failure=3 result_completion_id=11 name=12",
    "SleepCommandMessage": "wake_up_time=1 result_completion_id=11 name=12",
    "CallCommandMessage": "service_name=1 handler_name=2 parameter=3 headers=4 key=5 idempotency_key=6? "
    "scope=7? limit_key=8? invocation_id_notification_idx=10 result_completion_id=11 name=12",
    "OneWayCallCommandMessage": "service_name=1 handler_name=2 parameter=3 invoke_time=4 headers=5 key=6 "
    "idempotency_key=7? scope=8? limit_key=9? invocation_id_notification_idx=10 name=12",
    "SendSignalCommandMessage": "target_invocation_id=1 idx=2 name=3 void=4 value=5 failure=6 entry_name=12",
    "RunCommandMessage": "result_completion_id=11 name=12",
    "AttachInvocationCommandMessage": "invocation_id=1 idempotent_request_target=3 workflow_target=4 "
    "result_completion_id=11 name=12",
    "GetInvocationOutputCommandMessage": "invocation_id=1 idempotent_request_target=3 workflow_target=4 "
    "result_completion_id=11 name=12",
    "CompleteAwakeableCommandMessage": "awakeable_id=1 value=2 failure=3 name=12",
    "NotificationTemplate": "completion_id=1 signal_id=2 signal_name=3 void=4 value=5 failure=6 "
    "invocation_id=16 state_keys=17",
    "GetLazyStateCompletionNotificationMessage": "completion_id=1 void=4 value=5",
    "GetLazyStateKeysCompletionNotificationMessage": "completion_id=1 state_keys=17",
    "GetPromiseCompletionNotificationMessage": "completion_id=1 value=5 failure=6",
    "PeekPromiseCompletionNotificationMessage": "completion_id=1 void=4 value=5 failure=6",
    "CompletePromiseCompletionNotificationMessage": "completion_id=1 void=4 failure=6",
    "SleepCompletionNotificationMessage": "completion_id=1 void=4",
    "CallCompletionNotificationMessage": "completion_id=1 value=5 failure=6",
    "CallInvocationIdCompletionNotificationMessage": "completion_id=1 invocation_id=16",
    "RunCompletionNotificationMessage": "completion_id=1 value=5 failure=6",
    "AttachInvocationCompletionNotificationMessage": "completion_id=1 value=5 failure=6",
    "GetInvocationOutputCompletionNotificationMessage": "completion_id=1 void=4 value=5 failure=6",
    "SignalNotificationMessage": "idx=2 name=3 void=4 value=5 failure=6",
    "Value": "content=1",
    "Void": "",
    "StateKeys": "keys=1",
    "Failure": "code=1 message=2 metadata=3",
    "FailureMetadata": "key=1 value=2",
    "Header": "key=1 value=2",
    "WorkflowTarget": "workflow_name=1 workflow_key=2 scope=3?",
    "IdempotentRequestTarget": "service_name=1 service_key=2? handler_name=3 idempotency_key=4 scope=5?",
}


def _field_specs() -> dict[str, str]:
    file_proto = descriptor_pb2.FileDescriptorProto()
    pb.DESCRIPTOR.CopyToProto(file_proto)
    specs: dict[str, str] = {}
    pending = [("", m) for m in file_proto.message_type]
    while pending:
        prefix, msg = pending.pop()
        name = prefix + msg.name
        fields = sorted(msg.field, key=lambda f: f.number)
        specs[name] = " ".join(f"{f.name}={f.number}{'?' if f.proto3_optional else ''}" for f in fields)
        pending.extend((name + ".", nested) for nested in msg.nested_type)
    return specs


def test_field_numbers_match_the_wire_facts() -> None:
    assert pb.DESCRIPTOR.package == "dev.restate.service.protocol"
    actual = _field_specs()
    assert set(actual) == set(FIELD_NUMBERS)
    for name, spec in FIELD_NUMBERS.items():
        expected = " ".join(sorted(spec.split(), key=lambda s: int(s.split("=")[1].rstrip("?"))))
        assert actual[name] == expected, name


def test_enum_values_match_the_wire_facts() -> None:
    assert dict(pb.CombinatorType.items()) == {
        "COMBINATOR_TYPE_UNKNOWN": 0,
        "FIRST_COMPLETED": 1,
        "ALL_COMPLETED": 2,
        "FIRST_SUCCEEDED_OR_ALL_FAILED": 3,
        "ALL_SUCCEEDED_OR_FIRST_FAILED": 4,
    }
    assert dict(pb.ErrorBehavior.items()) == {"RETRY": 0, "PAUSE": 1, "FAIL": 2}
    assert dict(pb.BuiltInSignal.items()) == {"SIGNAL_UNKNOWN": 0, "CANCEL": 1}
    assert pb.ServiceProtocolVersion.Value("V7") == 7


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        ([], b""),
        ([], b'"Mary"'),
        ([("x-restate-ingress-path", "/Greeter/greet"), ("content-type", "application/json")], b"x" * 300),
        ([("empty-value", ""), ("", "no-key"), ("unicode", "grüß")], b"\x00\x01" * 70_000),
    ],
)
def test_input_commands_are_encoded_as_protobuf_encodes_them(headers: list[tuple[str, str]], body: bytes) -> None:
    expected = pb.InputCommandMessage(
        headers=[pb.Header(key=k, value=v) for k, v in headers], value=pb.Value(content=body)
    ).SerializeToString()
    assert encode_input_command(headers, body) == expected
    middle = len(body) // 2
    assert encode_input_command(headers, [body[:middle], body[middle:]]) == expected  # as the ingress read it

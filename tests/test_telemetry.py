from __future__ import annotations

import logging
import traceback
from collections.abc import Iterator
from typing import Any

import pytest

from channels_core import telemetry
from channels_core.telemetry import Handler

Call = tuple[telemetry.Event, dict[str, Any], dict[str, Any], Any]


@pytest.fixture(autouse=True)
def clean_handlers() -> Iterator[None]:
    # The handler table is process-wide, so each test must leave it empty.
    yield
    for handler in telemetry.list_handlers(()):
        telemetry.detach(handler.id)


@pytest.fixture
def calls() -> list[Call]:
    return []


@pytest.fixture
def record(calls: list[Call]) -> telemetry.HandlerFunction:
    def handler(
        event: telemetry.Event, measurements: dict[str, Any], metadata: dict[str, Any], config: Any
    ) -> None:
        calls.append((event, measurements, metadata, config))

    return handler


def test_event_constants() -> None:
    assert telemetry.SOCKET_CONNECTED == ("phoenix", "socket_connected")
    assert telemetry.CHANNEL_JOINED == ("phoenix", "channel_joined")
    assert telemetry.CHANNEL_HANDLED_IN == ("phoenix", "channel_handled_in")


def test_execute_calls_handlers_in_attach_order_with_all_arguments(
    calls: list[Call], record: telemetry.HandlerFunction
) -> None:
    telemetry.attach("first", telemetry.CHANNEL_JOINED, record, {"n": 1})
    telemetry.attach("second", telemetry.CHANNEL_JOINED, record, {"n": 2})

    result = telemetry.execute(telemetry.CHANNEL_JOINED, {"duration": 5}, {"topic": "room:1"})

    assert result is None
    assert calls == [
        (("phoenix", "channel_joined"), {"duration": 5}, {"topic": "room:1"}, {"n": 1}),
        (("phoenix", "channel_joined"), {"duration": 5}, {"topic": "room:1"}, {"n": 2}),
    ]


def test_config_defaults_to_none(calls: list[Call], record: telemetry.HandlerFunction) -> None:
    telemetry.attach("h", ("a",), record)
    telemetry.execute(("a",), {}, {})
    assert calls == [(("a",), {}, {}, None)]


def test_execute_only_reaches_handlers_of_that_event(
    calls: list[Call], record: telemetry.HandlerFunction
) -> None:
    telemetry.attach("h", telemetry.CHANNEL_JOINED, record)
    telemetry.execute(telemetry.SOCKET_CONNECTED, {}, {})
    telemetry.execute(("phoenix",), {}, {})
    assert calls == []


def test_execute_with_no_handler_returns_none() -> None:
    assert telemetry.execute(("nobody", "listens"), {"x": 1}, {}) is None


def test_detach(calls: list[Call], record: telemetry.HandlerFunction) -> None:
    telemetry.attach("h", ("a",), record)

    assert telemetry.detach("h") is True
    assert telemetry.detach("h") is False
    assert telemetry.detach("never attached") is False

    telemetry.execute(("a",), {}, {})
    assert calls == []
    assert telemetry.list_handlers(()) == []


def test_detach_leaves_other_handlers(
    calls: list[Call], record: telemetry.HandlerFunction
) -> None:
    telemetry.attach("one", ("a",), record, 1)
    telemetry.attach("two", ("a",), record, 2)

    telemetry.detach("one")
    telemetry.execute(("a",), {}, {})

    assert calls == [(("a",), {}, {}, 2)]


def test_attach_many(calls: list[Call], record: telemetry.HandlerFunction) -> None:
    telemetry.attach_many("h", [("a",), ("b", "c")], record, "cfg")

    telemetry.execute(("a",), {"m": 1}, {})
    telemetry.execute(("b", "c"), {"m": 2}, {})

    assert calls == [
        (("a",), {"m": 1}, {}, "cfg"),
        (("b", "c"), {"m": 2}, {}, "cfg"),
    ]
    assert telemetry.list_handlers(()) == [
        Handler("h", ("a",), record, "cfg"),
        Handler("h", ("b", "c"), record, "cfg"),
    ]

    assert telemetry.detach("h") is True
    telemetry.execute(("a",), {}, {})
    telemetry.execute(("b", "c"), {}, {})
    assert len(calls) == 2
    assert telemetry.list_handlers(()) == []


def test_attach_many_ignores_repeated_events(
    calls: list[Call], record: telemetry.HandlerFunction
) -> None:
    telemetry.attach_many("h", [("a",), ("a",)], record)
    telemetry.execute(("a",), {}, {})
    assert calls == [(("a",), {}, {}, None)]


def test_duplicate_handler_id_raises(calls: list[Call], record: telemetry.HandlerFunction) -> None:
    telemetry.attach("h", ("a",), record, "original")

    with pytest.raises(ValueError) as excinfo:
        telemetry.attach("h", ("b",), record)
    assert str(excinfo.value) == "handler 'h' is already attached"
    with pytest.raises(ValueError):
        telemetry.attach_many("h", [("c",)], record)

    # The original handler is untouched, and nothing was half-attached.
    assert telemetry.list_handlers(()) == [Handler("h", ("a",), record, "original")]


@pytest.mark.parametrize("bad", [["phoenix", "x"], "phoenix", (), ("phoenix", 1)])
def test_event_must_be_non_empty_tuple_of_strings(
    bad: Any, record: telemetry.HandlerFunction
) -> None:
    with pytest.raises(TypeError):
        telemetry.attach("h", bad, record)
    assert telemetry.list_handlers(()) == []


def test_raising_handler_is_detached_and_logged(
    calls: list[Call], record: telemetry.HandlerFunction, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(
        event: telemetry.Event, measurements: dict[str, Any], metadata: dict[str, Any], config: Any
    ) -> None:
        raise RuntimeError("boom")

    telemetry.attach("broken", ("a",), broken)
    telemetry.attach("good", ("a",), record)

    with caplog.at_level(logging.ERROR, logger="channels_core.telemetry"):
        assert telemetry.execute(("a",), {"m": 1}, {}) is None

    # The handler after the broken one still ran, and the caller saw no error.
    assert calls == [(("a",), {"m": 1}, {}, None)]
    assert [h.id for h in telemetry.list_handlers(())] == ["good"]

    assert len(caplog.records) == 1
    log = caplog.records[0]
    assert log.name == "channels_core.telemetry"
    assert log.levelno == logging.ERROR
    assert log.getMessage() == "handler 'broken' has failed and has been detached for event ('a',)"
    assert log.exc_info is not None
    assert log.exc_info[0] is RuntimeError
    assert str(log.exc_info[1]) == "boom"

    caplog.clear()
    telemetry.execute(("a",), {"m": 2}, {})
    assert calls[-1] == (("a",), {"m": 2}, {}, None)
    assert caplog.records == []


def test_list_handlers_by_prefix(record: telemetry.HandlerFunction) -> None:
    telemetry.attach("joined", telemetry.CHANNEL_JOINED, record)
    telemetry.attach("other", ("app", "x"), record)
    telemetry.attach("connected", telemetry.SOCKET_CONNECTED, record)

    assert [h.id for h in telemetry.list_handlers(("phoenix",))] == ["joined", "connected"]
    assert telemetry.list_handlers(("phoenix", "channel_joined")) == [
        Handler("joined", ("phoenix", "channel_joined"), record, None)
    ]
    assert telemetry.list_handlers(("phoenix", "channel_joined", "extra")) == []
    assert telemetry.list_handlers(("phoenix", "channel")) == []
    assert [h.id for h in telemetry.list_handlers(())] == ["joined", "other", "connected"]


SPAN_EVENTS = [("test", "op", "start"), ("test", "op", "stop"), ("test", "op", "exception")]


def test_span_emits_start_and_stop(calls: list[Call], record: telemetry.HandlerFunction) -> None:
    telemetry.attach_many("span", SPAN_EVENTS, record)
    start_metadata = {"topic": "room:1"}

    with telemetry.span(("test", "op"), start_metadata) as stop_metadata:
        assert stop_metadata == {"topic": "room:1"}
        stop_metadata["result"] = "ok"

    assert start_metadata == {"topic": "room:1"}
    assert [call[0] for call in calls] == [("test", "op", "start"), ("test", "op", "stop")]
    (_, start_m, start_md, _), (_, stop_m, stop_md, _) = calls

    assert set(start_m) == {"system_time", "monotonic_time"}
    assert isinstance(start_m["system_time"], int)
    assert isinstance(start_m["monotonic_time"], int)
    context = start_md["telemetry_span_context"]
    assert start_md == {"topic": "room:1", "telemetry_span_context": context}

    assert set(stop_m) == {"duration", "monotonic_time"}
    assert stop_m["duration"] == stop_m["monotonic_time"] - start_m["monotonic_time"]
    assert stop_m["duration"] >= 0
    assert stop_md == {"topic": "room:1", "result": "ok", "telemetry_span_context": context}


def test_span_contexts_are_unique_per_span(
    calls: list[Call], record: telemetry.HandlerFunction
) -> None:
    telemetry.attach("start", ("test", "op", "start"), record)
    with telemetry.span(("test", "op"), {}):
        pass
    with telemetry.span(("test", "op"), {}):
        pass
    first, second = (call[2]["telemetry_span_context"] for call in calls)
    assert first is not second


def test_span_exception_emits_event_and_reraises(
    calls: list[Call], record: telemetry.HandlerFunction
) -> None:
    telemetry.attach_many("span", SPAN_EVENTS, record)

    with pytest.raises(ValueError) as excinfo:
        with telemetry.span(("test", "op"), {"topic": "room:1"}) as stop_metadata:
            stop_metadata["result"] = "never reported"
            raise ValueError("bad input")

    assert [call[0] for call in calls] == [("test", "op", "start"), ("test", "op", "exception")]
    (_, start_m, start_md, _), (_, exc_m, exc_md, _) = calls

    assert set(exc_m) == {"duration", "monotonic_time"}
    assert exc_m["duration"] == exc_m["monotonic_time"] - start_m["monotonic_time"]
    assert exc_m["duration"] >= 0

    stacktrace = exc_md["stacktrace"]
    assert isinstance(stacktrace, traceback.StackSummary)
    assert stacktrace[-1].name == "test_span_exception_emits_event_and_reraises"
    assert exc_md == {
        "topic": "room:1",
        "kind": "error",
        "reason": excinfo.value,
        "stacktrace": stacktrace,
        "telemetry_span_context": start_md["telemetry_span_context"],
    }


def test_span_reports_keyboard_interrupt_as_exit(
    calls: list[Call], record: telemetry.HandlerFunction
) -> None:
    telemetry.attach("exception", ("test", "op", "exception"), record)

    with pytest.raises(KeyboardInterrupt):
        with telemetry.span(("test", "op"), {}):
            raise KeyboardInterrupt

    assert len(calls) == 1
    assert calls[0][2]["kind"] == "exit"
    assert isinstance(calls[0][2]["reason"], KeyboardInterrupt)


def test_span_without_handlers() -> None:
    with telemetry.span(("test", "op"), {}) as stop_metadata:
        stop_metadata["x"] = 1
    with pytest.raises(RuntimeError):
        with telemetry.span(("test", "op"), {}):
            raise RuntimeError("still raised")

"""Streaming through busbar with the official SDKs, all 36 pairs: the SDKs assemble text, tool
calls with parsed arguments and the final usage from a stream another protocol's provider
produced, and surface a stream broken mid-way (the provider's error event, garbage, a reset) as
their own error. Thinking streams are in test_stream_thinking.py."""

import json

import pytest

import anthropic
import openai

import adapters
from conftest import CLIENT_KEY, EGRESS

TOOLS_OPENAI = [{"type": "function", "function": {"name": "get_weather", "parameters": adapters.WEATHER_SCHEMA}}]
TOOLS_ANTHROPIC = [{"name": "get_weather", "input_schema": adapters.WEATHER_SCHEMA}]


def test_openai_sdk_streams_from_an_anthropic_provider(matrix, mock):
    c = openai.OpenAI(base_url=matrix.url + "/v1", api_key=CLIENT_KEY, max_retries=0)
    mock.clear()
    stream = c.chat.completions.create(
        model="via-anthropic", messages=[{"role": "user", "content": "alpha beta gamma"}],
        stream=True, stream_options={"include_usage": True},
    )
    text, finish, usage = "", None, None
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for ch in chunk.choices:
            text += ch.delta.content or ""
            finish = ch.finish_reason or finish
    assert text.startswith("alpha beta gamma"), text
    assert finish == "stop"
    assert usage.prompt_tokens > 0 and usage.completion_tokens > 0
    sent = json.loads(mock.requests()[-1]["body"])
    assert sent["stream"] is True and mock.requests()[-1]["path"] == "/v1/messages"

    # A tool call, assembled by the SDK's own stream helper.
    with c.chat.completions.stream(
        model="via-anthropic", messages=[{"role": "user", "content": "weather?"}], tools=TOOLS_OPENAI
    ) as s:
        final = s.get_final_completion()
    call = final.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "mock"}
    assert final.choices[0].finish_reason == "tool_calls"


def test_anthropic_sdk_streams_from_an_openai_provider(matrix, mock):
    c = anthropic.Anthropic(base_url=matrix.url, api_key=CLIENT_KEY, max_retries=0)
    mock.clear()
    with c.messages.stream(model="via-openai", max_tokens=64, messages=[{"role": "user", "content": "alpha beta gamma"}]) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert text.startswith("alpha beta gamma"), text
    assert final.stop_reason in ("end_turn", "max_tokens")
    assert final.usage.input_tokens > 0 and final.usage.output_tokens > 0
    sent = json.loads(mock.requests()[-1]["body"])
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}, sent

    with c.messages.stream(model="via-openai", max_tokens=64, messages=[{"role": "user", "content": "weather?"}], tools=TOOLS_ANTHROPIC) as s:
        final = s.get_final_message()
    tool = next(b for b in final.content if b.type == "tool_use")
    assert (tool.name, tool.input) == ("get_weather", {"city": "mock"})
    assert final.stop_reason == "tool_use"


def test_anthropic_sdk_streams_thinking_with_its_signature(matrix):
    c = anthropic.Anthropic(base_url=matrix.url, api_key=CLIENT_KEY, max_retries=0)
    with c.messages.stream(model="via-anthropic", max_tokens=2048, thinking={"type": "enabled", "budget_tokens": 1024},
                           messages=[{"role": "user", "content": "think"}]) as s:
        final = s.get_final_message()
    thinking = next(b for b in final.content if b.type == "thinking")
    assert thinking.thinking.startswith("The user said") and thinking.signature


def test_gemini_sdk_streams_from_openai_and_anthropic_providers(matrix, mock):
    g = adapters.Gemini(matrix.url, CLIENT_KEY)
    for model, path in [("via-openai", "/v1/chat/completions"), ("via-anthropic", "/v1/messages")]:
        mock.clear()
        chunks = list(g.c.models.generate_content_stream(model=model, contents="alpha beta gamma"))
        text = "".join(c.text or "" for c in chunks)
        assert text.startswith("alpha beta gamma"), (model, text)
        assert chunks[-1].candidates[0].finish_reason.name in ("STOP", "MAX_TOKENS")
        assert chunks[-1].usage_metadata.prompt_token_count > 0
        assert mock.requests()[-1]["path"] == path
        calls = [fc for c in g.c.models.generate_content_stream(model=model, contents="weather?", config=g.config)
                 for fc in (c.function_calls or [])]
        assert [(fc.name, dict(fc.args)) for fc in calls] == [("get_weather", {"city": "mock"})], model


def test_anthropic_and_openai_sdks_stream_from_a_gemini_provider(matrix, mock):
    c = anthropic.Anthropic(base_url=matrix.url, api_key=CLIENT_KEY, max_retries=0)
    mock.clear()
    with c.messages.stream(model="via-gemini", max_tokens=64, messages=[{"role": "user", "content": "alpha beta gamma"}]) as s:
        final = s.get_final_message()
    assert final.content[0].text.startswith("alpha beta gamma")
    sent = mock.requests()[-1]
    assert sent["path"] == "/v1beta/models/up-gemini:streamGenerateContent?alt=sse", sent["path"]
    o = openai.OpenAI(base_url=matrix.url + "/v1", api_key=CLIENT_KEY, max_retries=0)
    with o.chat.completions.stream(model="via-gemini", messages=[{"role": "user", "content": "weather?"}], tools=TOOLS_OPENAI) as s:
        final = s.get_final_completion()
    call = final.choices[0].message.tool_calls[0]
    assert json.loads(call.function.arguments) == {"city": "mock"}


def test_boto3_streams_from_openai_and_anthropic_providers(matrix, mock):
    b = adapters.Bedrock(matrix.url, CLIENT_KEY)
    for model in ["via-openai", "via-anthropic", "via-bedrock"]:
        r = b.c.converse_stream(modelId=model, messages=[{"role": "user", "content": [{"text": "alpha beta gamma"}]}])
        text, stop, usage = "", None, None
        for ev in r["stream"]:
            if "contentBlockDelta" in ev:
                text += ev["contentBlockDelta"]["delta"].get("text", "")
            stop = ev.get("messageStop", {}).get("stopReason", stop)
            usage = ev.get("metadata", {}).get("usage", usage)
        assert text.startswith("alpha beta gamma"), (model, text)
        assert stop in ("end_turn", "max_tokens"), model
        assert usage["inputTokens"] > 0 and usage["outputTokens"] > 0, model
        r = b.c.converse_stream(modelId=model, messages=[{"role": "user", "content": [{"text": "weather?"}]}], toolConfig=b.tools)
        start, args, stop = None, "", None
        for ev in r["stream"]:
            if "contentBlockStart" in ev:
                start = ev["contentBlockStart"]["start"]["toolUse"]
            if "contentBlockDelta" in ev and "toolUse" in ev["contentBlockDelta"]["delta"]:
                args += ev["contentBlockDelta"]["delta"]["toolUse"]["input"]
            stop = ev.get("messageStop", {}).get("stopReason", stop)
        assert start["name"] == "get_weather" and json.loads(args) == {"city": "mock"}, model
        assert stop == "tool_use", model


def test_openai_sdk_streams_from_a_bedrock_provider(matrix, mock):
    c = openai.OpenAI(base_url=matrix.url + "/v1", api_key=CLIENT_KEY, max_retries=0)
    mock.clear()
    with c.chat.completions.stream(model="via-bedrock", messages=[{"role": "user", "content": "weather?"}], tools=TOOLS_OPENAI) as s:
        final = s.get_final_completion()
    assert json.loads(final.choices[0].message.tool_calls[0].function.arguments) == {"city": "mock"}
    assert mock.requests()[-1]["path"] == "/model/up-bedrock/converse-stream"


def test_cohere_sdk_streams_from_other_providers_and_back(matrix, mock):
    co = adapters.Cohere(matrix.url, CLIENT_KEY)
    for model in ["via-openai", "via-anthropic", "via-cohere"]:
        text, finish, usage = "", None, None
        for ev in co.c.chat_stream(model=model, messages=[{"role": "user", "content": "alpha beta gamma"}], request_options=adapters.NO_RETRY):
            if ev.type == "content-delta":
                text += ev.delta.message.content.text or ""
            if ev.type == "message-end":
                finish, usage = ev.delta.finish_reason, ev.delta.usage
        assert text.startswith("alpha beta gamma"), (model, text)
        assert finish in ("COMPLETE", "MAX_TOKENS") and usage.billed_units.output_tokens > 0, model
        args, name = "", None
        for ev in co.c.chat_stream(model=model, messages=[{"role": "user", "content": "weather?"}], tools=co.tools, request_options=adapters.NO_RETRY):
            if ev.type == "tool-call-start":
                name = ev.delta.message.tool_calls.function.name
            if ev.type == "tool-call-delta":
                args += ev.delta.message.tool_calls.function.arguments or ""
        assert name == "get_weather" and json.loads(args) == {"city": "mock"}, model
    o = openai.OpenAI(base_url=matrix.url + "/v1", api_key=CLIENT_KEY, max_retries=0)
    with o.chat.completions.stream(model="via-cohere", messages=[{"role": "user", "content": "weather?"}], tools=TOOLS_OPENAI) as s:
        final = s.get_final_completion()
    assert json.loads(final.choices[0].message.tool_calls[0].function.arguments) == {"city": "mock"}


STREAM_RESULTS = {}


@pytest.mark.parametrize("egress", EGRESS)
@pytest.mark.parametrize("sdk", adapters.ALL, ids=lambda a: a.name)
def test_stream_pair(sdk, egress, matrix):
    """All 36 pairs stream: the SDK's own stream handling assembles the text (with usage at the
    end) and a tool call with parsed arguments, whatever protocol the provider streamed."""
    client = sdk(matrix.url, CLIENT_KEY)
    text, out_tokens = client.stream_text(f"via-{egress}", "alpha beta gamma")
    assert text.startswith("alpha beta gamma"), text
    assert out_tokens > 0
    assert client.stream_tool(f"via-{egress}") == ("get_weather", {"city": "mock"})


# What reaches the client when the provider's stream breaks after some text: the provider's own
# error event (translated), or busbar's when the provider sent garbage or reset the connection.
BREAK_MESSAGE = {
    "error": "mock: the stream broke as requested",
    "garbage": "unreadable stream",
    "reset": "ended before it was complete",
}


@pytest.mark.parametrize("how", list(BREAK_MESSAGE))
@pytest.mark.parametrize("egress", EGRESS)
@pytest.mark.parametrize("sdk", adapters.ALL, ids=lambda a: a.name)
def test_stream_broken_mid_way_raises_the_sdks_error(sdk, egress, how, matrix):
    """All 36 pairs: a stream that breaks after its first words ends with an error the SDK
    surfaces in its own way, after the words that did come; never as a whole answer."""
    client = sdk(matrix.url, CLIENT_KEY)
    text, err = client.stream_broken(f"via-{egress}", f"alpha beta gamma delta mock-break={how}")
    assert err is not None, f"no error surfaced; text {text!r}"
    assert BREAK_MESSAGE[how] in err or (how == "garbage" and "ended before" in err), err
    assert text.startswith("alpha"), text
    assert "delta" not in text, text


"""The official OpenAI SDK against busbar: what it parses, and what reached the provider."""

import asyncio
import json

import openai
import pytest

from conftest import CLIENT_KEY, PROVIDER_KEY

MESSAGES = [{"role": "user", "content": "alpha beta gamma"}]


def only_request(mock):
    got = mock.requests()
    assert len(got) == 1, got
    return got[0]


def test_non_streaming_completion_and_what_the_provider_received(client, mock):
    mock.clear()
    r = client.chat.completions.create(model="gpt-test", messages=MESSAGES, max_tokens=2, temperature=0.5)
    assert isinstance(r, openai.types.chat.ChatCompletion)
    assert r.choices[0].message.role == "assistant"
    assert r.choices[0].message.content == "alpha beta"
    assert r.choices[0].finish_reason == "length"
    assert r.usage.completion_tokens == 2
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens

    sent = only_request(mock)
    assert sent["method"] == "POST" and sent["path"] == "/v1/chat/completions"
    body = json.loads(sent["body"])
    assert body.pop("model") == "mock-model", "the model name is spliced to the provider's"
    assert body == {"messages": MESSAGES, "max_tokens": 2, "temperature": 0.5}
    assert sent["headers"]["authorization"] == f"Bearer {PROVIDER_KEY}"
    assert all(CLIENT_KEY not in v for v in sent["headers"].values()), "client key leaked upstream"
    # The SDK's own headers go through.
    assert sent["headers"]["user-agent"].startswith("OpenAI/Python")


def collect(stream):
    text, finish, usage, chunks = "", None, None, 0
    for chunk in stream:
        chunks += 1
        if chunk.usage is not None:
            usage = chunk.usage
        for c in chunk.choices:
            text += c.delta.content or ""
            finish = c.finish_reason or finish
    return text, finish, usage, chunks


def test_streaming_reassembles_to_the_same_answer(client, mock):
    whole = client.chat.completions.create(model="gpt-test", messages=MESSAGES)
    text, finish, usage, chunks = collect(client.chat.completions.create(model="gpt-test", messages=MESSAGES, stream=True))
    assert text == whole.choices[0].message.content
    assert finish == "stop"
    assert usage is None, "no usage chunk unless asked for"
    assert chunks == 1 + 8 + 1  # role, 8 tokens, finish

    text2, _, usage, _ = collect(
        client.chat.completions.create(
            model="gpt-test", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
    )
    assert text2 == text
    assert usage is not None and usage.completion_tokens == 8
    assert usage.total_tokens == usage.prompt_tokens + 8


def test_stream_helper(client):
    # The helper refuses a reply cut by max_tokens (LengthFinishReasonError), so none is set.
    deltas = []
    with client.chat.completions.stream(model="gpt-test", messages=MESSAGES) as stream:
        for event in stream:
            if event.type == "content.delta":
                deltas.append(event.delta)
        final = stream.get_final_completion()
    assert final.choices[0].message.content == "alpha beta gamma busbar is a thread per"
    assert "".join(deltas) == final.choices[0].message.content
    assert len([d for d in deltas if d]) == 8, deltas
    assert final.choices[0].finish_reason == "stop"


def test_pool_name_routes_to_a_member(client, mock):
    mock.clear()
    r = client.chat.completions.create(model="fast", messages=MESSAGES, max_tokens=1)
    assert r.choices[0].message.content == "alpha"
    assert json.loads(only_request(mock)["body"])["model"] == "mock-model"


def test_builtin_mock_answers_without_a_provider(client, mock):
    mock.clear()
    r = client.chat.completions.create(model="local-mock", messages=[{"role": "user", "content": "hi there"}])
    assert r.choices[0].message.content.startswith("hi there")
    assert r.usage.completion_tokens == 8
    assert mock.requests() == []


def test_models_list(client):
    ids = {m.id for m in client.models.list()}
    assert {"gpt-test", "local-mock", "fast", "unreachable"} <= ids


def test_wrong_client_key_is_an_authentication_error(gateway):
    with pytest.raises(openai.AuthenticationError) as e:
        gateway.client(key="bb-not-a-key").chat.completions.create(model="gpt-test", messages=MESSAGES)
    assert e.value.status_code == 401
    assert e.value.code == "invalid_api_key"


def test_unknown_model_is_not_found(client):
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="gpt-nonexistent", messages=MESSAGES)
    assert e.value.status_code == 404
    assert "gpt-nonexistent" in e.value.message
    assert e.value.code == "model_not_found"


def test_provider_errors_are_relayed(client):
    with pytest.raises(openai.InternalServerError) as e:
        client.chat.completions.create(model="gpt-test", messages=MESSAGES, extra_headers={"x-mock-status": "503"})
    assert e.value.status_code == 503
    assert "x-mock-status" in e.value.message


def test_unreachable_provider_is_502_naming_it(client):
    with pytest.raises(openai.APIStatusError) as e:
        client.chat.completions.create(model="unreachable", messages=MESSAGES)
    assert e.value.status_code == 502
    assert "gone" in e.value.message and "cannot connect" in e.value.message


def test_async_client_streams(gateway):
    async def run():
        client = gateway.async_client()
        stream = await client.chat.completions.create(model="gpt-test", messages=MESSAGES, stream=True, max_tokens=4)
        text = ""
        async for chunk in stream:
            for c in chunk.choices:
                text += c.delta.content or ""
        await client.close()
        return text

    assert asyncio.run(run()) == "alpha beta gamma busbar"

"""What reached the provider, and what busbar says about it, for the fields gateways usually
lose: thinking signatures, Gemini safety settings, upper-case Gemini schemas, losses named in
x-busbar-dropped, strict refusals, and the model lists in each SDK's own shape.
"""

import base64
import json

import anthropic
import openai
import pytest
from google import genai
from google.genai import types as gtypes

import adapters
from conftest import CLIENT_KEY


def last_body(mock):
    return json.loads(mock.requests()[-1]["body"])


def test_anthropic_thinking_signature_survives_a_gemini_provider(matrix, mock):
    """Gemini's thought signature reaches an Anthropic client as a thinking signature, and
    comes back to Gemini unchanged on the next turn."""
    c = anthropic.Anthropic(base_url=matrix.url, api_key=CLIENT_KEY, max_retries=0)
    tools = [{"name": "get_weather", "description": "weather", "input_schema": adapters.WEATHER_SCHEMA}]
    msgs = [{"role": "user", "content": "Weather in Paris?"}]
    mock.clear()
    r = c.messages.create(model="via-gemini", max_tokens=2048, messages=msgs, tools=tools,
                          thinking={"type": "enabled", "budget_tokens": 1024})
    up = last_body(mock)
    assert up["generationConfig"]["thinkingConfig"]["thinkingBudget"] == 1024
    thinking = next(b for b in r.content if b.type == "thinking")
    assert base64.b64decode(thinking.signature).startswith(b"mocksig"), thinking
    tool = next(b for b in r.content if b.type == "tool_use")
    msgs += [{"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in r.content]},
             {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool.id, "content": "sunny"}]}]
    c.messages.create(model="via-gemini", max_tokens=2048, messages=msgs, tools=tools,
                      thinking={"type": "enabled", "budget_tokens": 1024})
    parts = [p for c in last_body(mock)["contents"] for p in c["parts"]]
    assert any(p.get("thought") and p.get("thoughtSignature") == thinking.signature for p in parts), parts
    call = next(p for p in parts if "functionCall" in p)
    assert "id" not in call["functionCall"], "a minted id never goes back to Gemini"
    answer = next(p for p in parts if "functionResponse" in p)["functionResponse"]
    assert answer["name"] == "get_weather" and answer["response"] == {"output": "sunny"}


def test_bedrock_reasoning_signature_reaches_an_anthropic_provider(matrix, mock):
    b = adapters.Bedrock(matrix.url, CLIENT_KEY)
    msgs = [
        {"role": "user", "content": [{"text": "Think, then answer: 2+2?"}]},
        {"role": "assistant", "content": [
            {"reasoningContent": {"reasoningText": {"text": "Simple sum.", "signature": "EqQBCgIYAhIMsig"}}},
            {"text": "4"},
        ]},
        {"role": "user", "content": [{"text": "And 3+3?"}]},
    ]
    mock.clear()
    b.c.converse(modelId="via-anthropic", messages=msgs,
                 additionalModelRequestFields={"thinking": {"type": "enabled", "budget_tokens": 1024}})
    up = last_body(mock)
    block = up["messages"][1]["content"][0]
    assert block == {"type": "thinking", "thinking": "Simple sum.", "signature": "EqQBCgIYAhIMsig"}, up
    assert up["thinking"] == {"type": "enabled", "budget_tokens": 1024}


def gemini_client(matrix):
    return genai.Client(api_key=CLIENT_KEY, http_options=gtypes.HttpOptions(base_url=matrix.url, api_version="v1beta"))


SAFETY = [gtypes.SafetySetting(category="HARM_CATEGORY_HATE_SPEECH", threshold="BLOCK_ONLY_HIGH")]


def test_gemini_safety_settings_arrive_at_gemini_and_are_reported_elsewhere(matrix, mock):
    g = gemini_client(matrix)
    mock.clear()
    g.models.generate_content(model="via-gemini", contents="hello", config=gtypes.GenerateContentConfig(safety_settings=SAFETY))
    assert last_body(mock)["safetySettings"] == [{"category": "HARM_CATEGORY_HATE_SPEECH", "threshold": "BLOCK_ONLY_HIGH"}]
    r = g.models.generate_content(model="via-anthropic", contents="hello", config=gtypes.GenerateContentConfig(safety_settings=SAFETY))
    assert "safetySettings" not in last_body(mock) and "safety_settings" not in last_body(mock)
    assert "safety_settings" in r.sdk_http_response.headers["x-busbar-dropped"]


def test_gemini_upper_case_schema_reaches_openai_as_json_schema(matrix, mock):
    g = adapters.Gemini(matrix.url, CLIENT_KEY)
    mock.clear()
    g.tool_call("via-openai")
    tool = last_body(mock)["tools"][0]["function"]
    assert tool["parameters"] == {"type": "object", "properties": {"city": {"type": "string", "description": "City name"}}, "required": ["city"]}


def test_openai_schema_reaches_gemini_upper_case(matrix, mock):
    o = adapters.OpenAIChat(matrix.url, CLIENT_KEY)
    mock.clear()
    o.tool_call("via-gemini")
    decl = last_body(mock)["tools"][0]["functionDeclarations"][0]
    assert decl["parameters"]["type"] == "OBJECT"
    assert decl["parameters"]["properties"]["city"]["type"] == "STRING"


def test_losses_are_named_and_strict_models_refuse(matrix, mock):
    c = openai.OpenAI(base_url=matrix.url + "/v1", api_key=CLIENT_KEY, max_retries=0)
    raw = c.chat.completions.with_raw_response.create(
        model="via-anthropic", messages=[{"role": "user", "content": "hi"}], logit_bias={"50256": -100}, seed=3
    )
    dropped = raw.headers["x-busbar-dropped"]
    assert "logit_bias" in dropped and "seed" in dropped, dropped
    assert raw.parse().choices[0].message.content
    mock.clear()
    with pytest.raises(openai.BadRequestError) as e:
        c.chat.completions.create(model="strict-anthropic", messages=[{"role": "user", "content": "hi"}], seed=3)
    assert "seed" in e.value.message and e.value.code == "lossy_translation"
    assert mock.requests() == [], "a strict refusal sends nothing upstream"


def test_model_lists_in_each_sdks_shape(matrix):
    ids = {m.id for m in openai.OpenAI(base_url=matrix.url + "/v1", api_key=CLIENT_KEY).models.list()}
    assert {"via-openai", "via-bedrock"} <= ids
    ids = {m.id for m in anthropic.Anthropic(base_url=matrix.url, api_key=CLIENT_KEY).models.list()}
    assert {"via-anthropic", "via-gemini"} <= ids
    g = gemini_client(matrix)
    names = {m.name for m in g.models.list()}
    assert {"models/via-gemini", "models/via-cohere"} <= names

"""One adapter per official client SDK: the same three conversations (text, a tool call, the
tool's result on a second turn) and the same two provider errors, each written the way a user
of that SDK writes it. The SDK parses every answer itself: that is the judge.
"""

import json

import anthropic
import boto3
import botocore
import botocore.config
import botocore.exceptions
import cohere
import openai
from google import genai
from google.genai import types as gtypes

WEATHER_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string", "description": "City name"}},
    "required": ["city"],
}
WEATHER_DOC = "Current weather in a city"
QUESTION = "What is the weather in Paris?"


class OpenAIChat:
    name = "openai"

    def __init__(self, base, key):
        self.c = openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0, timeout=30)
        self.tools = [{"type": "function", "function": {"name": "get_weather", "description": WEATHER_DOC, "parameters": WEATHER_SCHEMA}}]

    def text(self, model, prompt):
        r = self.c.chat.completions.create(model=model, messages=[{"role": "user", "content": prompt}])
        return r.choices[0].message.content, r.usage.prompt_tokens, r.usage.completion_tokens

    def tool_call(self, model):
        msgs = [{"role": "user", "content": QUESTION}]
        r = self.c.chat.completions.create(model=model, messages=msgs, tools=self.tools)
        assert r.choices[0].finish_reason == "tool_calls"
        tc = r.choices[0].message.tool_calls[0]
        state = (msgs + [r.choices[0].message.model_dump(exclude_none=True)], tc.id)
        return tc.function.name, json.loads(tc.function.arguments), state

    def tool_result(self, model, state, result):
        msgs, call_id = state
        msgs = msgs + [{"role": "tool", "tool_call_id": call_id, "content": result}]
        r = self.c.chat.completions.create(model=model, messages=msgs, tools=self.tools)
        return r.choices[0].message.content

    def error_class(self, status):
        return {400: openai.BadRequestError, 429: openai.RateLimitError}[status]

    def retry_after(self, err):
        return err.response.headers.get("retry-after")


class OpenAIResponses:
    name = "responses"

    def __init__(self, base, key):
        self.c = openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0, timeout=30)
        self.tools = [{"type": "function", "name": "get_weather", "description": WEATHER_DOC, "parameters": WEATHER_SCHEMA}]

    def text(self, model, prompt):
        r = self.c.responses.create(model=model, input=prompt)
        return r.output_text, r.usage.input_tokens, r.usage.output_tokens

    def tool_call(self, model):
        items = [{"role": "user", "content": QUESTION}]
        r = self.c.responses.create(model=model, input=items, tools=self.tools)
        fc = next(o for o in r.output if o.type == "function_call")
        call = {"type": "function_call", "call_id": fc.call_id, "name": fc.name, "arguments": fc.arguments}
        return fc.name, json.loads(fc.arguments), (items + [call], fc.call_id)

    def tool_result(self, model, state, result):
        items, call_id = state
        items = items + [{"type": "function_call_output", "call_id": call_id, "output": result}]
        r = self.c.responses.create(model=model, input=items, tools=self.tools)
        return r.output_text

    error_class = OpenAIChat.error_class
    retry_after = OpenAIChat.retry_after


class Anthropic:
    name = "anthropic"

    def __init__(self, base, key):
        self.c = anthropic.Anthropic(base_url=base, api_key=key, max_retries=0, timeout=30)
        self.tools = [{"name": "get_weather", "description": WEATHER_DOC, "input_schema": WEATHER_SCHEMA}]

    def text(self, model, prompt):
        r = self.c.messages.create(model=model, max_tokens=256, messages=[{"role": "user", "content": prompt}])
        text = "".join(b.text for b in r.content if b.type == "text")
        return text, r.usage.input_tokens, r.usage.output_tokens

    def tool_call(self, model):
        msgs = [{"role": "user", "content": QUESTION}]
        r = self.c.messages.create(model=model, max_tokens=256, messages=msgs, tools=self.tools)
        assert r.stop_reason == "tool_use"
        tu = next(b for b in r.content if b.type == "tool_use")
        msgs = msgs + [{"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in r.content]}]
        return tu.name, tu.input, (msgs, tu.id)

    def tool_result(self, model, state, result):
        msgs, call_id = state
        msgs = msgs + [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": call_id, "content": result}]}]
        r = self.c.messages.create(model=model, max_tokens=256, messages=msgs, tools=self.tools)
        return "".join(b.text for b in r.content if b.type == "text")

    def error_class(self, status):
        return {400: anthropic.BadRequestError, 429: anthropic.RateLimitError}[status]

    def retry_after(self, err):
        return err.response.headers.get("retry-after")


class Gemini:
    name = "gemini"

    def __init__(self, base, key):
        self.c = genai.Client(api_key=key, http_options=gtypes.HttpOptions(base_url=base, api_version="v1beta"))
        decl = gtypes.FunctionDeclaration(
            name="get_weather",
            description=WEATHER_DOC,
            parameters=gtypes.Schema(
                type="OBJECT",
                properties={"city": gtypes.Schema(type="STRING", description="City name")},
                required=["city"],
            ),
        )
        self.config = gtypes.GenerateContentConfig(
            tools=[gtypes.Tool(function_declarations=[decl])],
            automatic_function_calling=gtypes.AutomaticFunctionCallingConfig(disable=True),
        )

    def text(self, model, prompt):
        r = self.c.models.generate_content(model=model, contents=prompt)
        u = r.usage_metadata
        return r.text, u.prompt_token_count, (u.candidates_token_count or 0) + (u.thoughts_token_count or 0)

    def tool_call(self, model):
        contents = [gtypes.Content(role="user", parts=[gtypes.Part(text=QUESTION)])]
        r = self.c.models.generate_content(model=model, contents=contents, config=self.config)
        fc = r.function_calls[0]
        return fc.name, dict(fc.args), (contents + [r.candidates[0].content], fc.name)

    def tool_result(self, model, state, result):
        contents, name = state
        reply = gtypes.Content(role="user", parts=[gtypes.Part.from_function_response(name=name, response={"output": result})])
        r = self.c.models.generate_content(model=model, contents=contents + [reply], config=self.config)
        return r.text

    def error_class(self, status):
        return genai.errors.ClientError

    def retry_after(self, err):
        resp = getattr(err, "response", None)
        return resp.headers.get("retry-after") if resp is not None and hasattr(resp, "headers") else None


# The Cohere SDK retries 429s and 5xx by itself (honouring Retry-After); the tests want the
# first answer.
NO_RETRY = {"max_retries": 0}


class Cohere:
    name = "cohere"

    def __init__(self, base, key):
        self.c = cohere.ClientV2(api_key=key, base_url=base, timeout=30)
        self.tools = [{"type": "function", "function": {"name": "get_weather", "description": WEATHER_DOC, "parameters": WEATHER_SCHEMA}}]

    def text(self, model, prompt):
        r = self.c.chat(model=model, messages=[{"role": "user", "content": prompt}], request_options=NO_RETRY)
        text = "".join(c.text for c in r.message.content if c.type == "text")
        return text, r.usage.billed_units.input_tokens, r.usage.billed_units.output_tokens

    def tool_call(self, model):
        msgs = [{"role": "user", "content": QUESTION}]
        r = self.c.chat(model=model, messages=msgs, tools=self.tools, request_options=NO_RETRY)
        assert r.finish_reason == "TOOL_CALL"
        tc = r.message.tool_calls[0]
        assistant = {"role": "assistant", "tool_calls": [tc.dict(exclude_none=True)]}
        if r.message.tool_plan:
            assistant["tool_plan"] = r.message.tool_plan
        return tc.function.name, json.loads(tc.function.arguments), (msgs + [assistant], tc.id)

    def tool_result(self, model, state, result):
        msgs, call_id = state
        msgs = msgs + [{"role": "tool", "tool_call_id": call_id, "content": result}]
        r = self.c.chat(model=model, messages=msgs, tools=self.tools, request_options=NO_RETRY)
        return "".join(c.text for c in r.message.content if c.type == "text")

    def error_class(self, status):
        return {400: cohere.errors.BadRequestError, 429: cohere.errors.TooManyRequestsError}[status]

    def retry_after(self, err):
        headers = getattr(err, "headers", None) or {}
        return {k.lower(): v for k, v in headers.items()}.get("retry-after")


class Bedrock:
    name = "bedrock"

    def __init__(self, base, key):
        # busbar's key goes as a Bedrock API key (`Authorization: Bearer`). botocore sends
        # AWS_BEARER_TOKEN_BEDROCK only to https endpoints, and this test talks plain HTTP on
        # loopback, so the same header is added by a botocore event hook on an unsigned client.
        self.c = boto3.client(
            "bedrock-runtime",
            region_name="us-east-1",
            endpoint_url=base,
            aws_access_key_id="unused",
            aws_secret_access_key="unused",
            config=botocore.config.Config(
                signature_version=botocore.UNSIGNED,
                retries={"max_attempts": 1, "mode": "standard"},
                read_timeout=30,
            ),
        )

        def bearer(request, **_):
            request.headers["Authorization"] = f"Bearer {key}"

        self.c.meta.events.register("before-send.bedrock-runtime.*", bearer)
        self.tools = {"tools": [{"toolSpec": {"name": "get_weather", "description": WEATHER_DOC, "inputSchema": {"json": WEATHER_SCHEMA}}}]}

    def text(self, model, prompt):
        r = self.c.converse(modelId=model, messages=[{"role": "user", "content": [{"text": prompt}]}])
        text = "".join(c["text"] for c in r["output"]["message"]["content"] if "text" in c)
        return text, r["usage"]["inputTokens"], r["usage"]["outputTokens"]

    def tool_call(self, model):
        msgs = [{"role": "user", "content": [{"text": QUESTION}]}]
        r = self.c.converse(modelId=model, messages=msgs, toolConfig=self.tools)
        assert r["stopReason"] == "tool_use"
        tu = next(c["toolUse"] for c in r["output"]["message"]["content"] if "toolUse" in c)
        return tu["name"], tu["input"], (msgs + [r["output"]["message"]], tu["toolUseId"])

    def tool_result(self, model, state, result):
        msgs, call_id = state
        msgs = msgs + [{"role": "user", "content": [{"toolResult": {"toolUseId": call_id, "content": [{"text": result}]}}]}]
        r = self.c.converse(modelId=model, messages=msgs, toolConfig=self.tools)
        return "".join(c["text"] for c in r["output"]["message"]["content"] if "text" in c)

    def error_class(self, status):
        return botocore.exceptions.ClientError

    def retry_after(self, err):
        return err.response["ResponseMetadata"]["HTTPHeaders"].get("retry-after")


ALL = [OpenAIChat, OpenAIResponses, Anthropic, Gemini, Cohere, Bedrock]


# Streaming, each SDK's own way: (text, output tokens) for a prompt, and (name, arguments) of
# the tool call the SDK assembles from the stream.

def _openai_stream_text(self, model, prompt):
    stream = self.c.chat.completions.create(model=model, messages=[{"role": "user", "content": prompt}],
                                            stream=True, stream_options={"include_usage": True})
    text, usage = "", None
    for chunk in stream:
        usage = chunk.usage or usage
        for ch in chunk.choices:
            text += ch.delta.content or ""
    return text, usage.completion_tokens


def _openai_stream_tool(self, model):
    with self.c.chat.completions.stream(model=model, messages=[{"role": "user", "content": QUESTION}], tools=self.tools) as s:
        call = s.get_final_completion().choices[0].message.tool_calls[0]
    return call.function.name, json.loads(call.function.arguments)


OpenAIChat.stream_text = _openai_stream_text
OpenAIChat.stream_tool = _openai_stream_tool


def _responses_stream_text(self, model, prompt):
    with self.c.responses.stream(model=model, input=prompt) as s:
        final = s.get_final_response()
    return final.output_text, final.usage.output_tokens


def _responses_stream_tool(self, model):
    with self.c.responses.stream(model=model, input=QUESTION, tools=self.tools) as s:
        final = s.get_final_response()
    fc = next(o for o in final.output if o.type == "function_call")
    return fc.name, json.loads(fc.arguments)


OpenAIResponses.stream_text = _responses_stream_text
OpenAIResponses.stream_tool = _responses_stream_tool


def _anthropic_stream_text(self, model, prompt):
    with self.c.messages.stream(model=model, max_tokens=256, messages=[{"role": "user", "content": prompt}]) as s:
        final = s.get_final_message()
    return "".join(b.text for b in final.content if b.type == "text"), final.usage.output_tokens


def _anthropic_stream_tool(self, model):
    with self.c.messages.stream(model=model, max_tokens=256, messages=[{"role": "user", "content": QUESTION}], tools=self.tools) as s:
        final = s.get_final_message()
    tu = next(b for b in final.content if b.type == "tool_use")
    return tu.name, tu.input


Anthropic.stream_text = _anthropic_stream_text
Anthropic.stream_tool = _anthropic_stream_tool


def _gemini_stream_text(self, model, prompt):
    chunks = list(self.c.models.generate_content_stream(model=model, contents=prompt))
    u = chunks[-1].usage_metadata
    return "".join(c.text or "" for c in chunks), (u.candidates_token_count or 0) + (u.thoughts_token_count or 0)


def _gemini_stream_tool(self, model):
    calls = [fc for c in self.c.models.generate_content_stream(model=model, contents=QUESTION, config=self.config)
             for fc in (c.function_calls or [])]
    return calls[0].name, dict(calls[0].args)


Gemini.stream_text = _gemini_stream_text
Gemini.stream_tool = _gemini_stream_tool


def _cohere_stream_text(self, model, prompt):
    text, out = "", 0
    for ev in self.c.chat_stream(model=model, messages=[{"role": "user", "content": prompt}], request_options=NO_RETRY):
        if ev.type == "content-delta":
            text += ev.delta.message.content.text or ""
        if ev.type == "message-end":
            out = ev.delta.usage.billed_units.output_tokens
    return text, out


def _cohere_stream_tool(self, model):
    name, args = None, ""
    for ev in self.c.chat_stream(model=model, messages=[{"role": "user", "content": QUESTION}], tools=self.tools, request_options=NO_RETRY):
        if ev.type == "tool-call-start":
            name = ev.delta.message.tool_calls.function.name
            args += ev.delta.message.tool_calls.function.arguments or ""
        if ev.type == "tool-call-delta":
            args += ev.delta.message.tool_calls.function.arguments or ""
    return name, json.loads(args)


Cohere.stream_text = _cohere_stream_text
Cohere.stream_tool = _cohere_stream_tool


def _bedrock_stream_text(self, model, prompt):
    text, out = "", 0
    for ev in self.c.converse_stream(modelId=model, messages=[{"role": "user", "content": [{"text": prompt}]}])["stream"]:
        if "contentBlockDelta" in ev:
            text += ev["contentBlockDelta"]["delta"].get("text", "")
        if "metadata" in ev:
            out = ev["metadata"]["usage"]["outputTokens"]
    return text, out


def _bedrock_stream_tool(self, model):
    name, args = None, ""
    for ev in self.c.converse_stream(modelId=model, messages=[{"role": "user", "content": [{"text": QUESTION}]}], toolConfig=self.tools)["stream"]:
        if "contentBlockStart" in ev:
            name = ev["contentBlockStart"]["start"]["toolUse"]["name"]
        if "contentBlockDelta" in ev and "toolUse" in ev["contentBlockDelta"]["delta"]:
            args += ev["contentBlockDelta"]["delta"]["toolUse"]["input"]
    return name, json.loads(args)


Bedrock.stream_text = _bedrock_stream_text
Bedrock.stream_tool = _bedrock_stream_tool


# A stream that breaks mid-way: (the text that came before, the error as the SDK surfaced it).
# Each SDK's own way: OpenAI, Anthropic, Gemini and boto3 raise from the stream iterator; the
# Responses API reports `response.failed` (or `error`) as a typed event; Cohere ends with
# `message-end`, `finish_reason: ERROR` and the error text.

def _openai_stream_broken(self, model, prompt):
    text = ""
    try:
        for chunk in self.c.chat.completions.create(model=model, messages=[{"role": "user", "content": prompt}], stream=True):
            for ch in chunk.choices:
                text += ch.delta.content or ""
    except openai.APIError as e:
        return text, e.message
    return text, None


def _responses_stream_broken(self, model, prompt):
    text = ""
    with self.c.responses.stream(model=model, input=prompt) as s:
        for ev in s:
            if ev.type == "response.output_text.delta":
                text += ev.delta
            if ev.type == "response.failed":
                return text, ev.response.error.message
            if ev.type == "error":
                return text, ev.message
    return text, None


def _anthropic_stream_broken(self, model, prompt):
    text = ""
    try:
        with self.c.messages.stream(model=model, max_tokens=256, messages=[{"role": "user", "content": prompt}]) as s:
            for t in s.text_stream:
                text += t
    except anthropic.APIError as e:
        return text, e.message
    return text, None


def _gemini_stream_broken(self, model, prompt):
    text = ""
    try:
        for c in self.c.models.generate_content_stream(model=model, contents=prompt):
            text += c.text or ""
    except genai.errors.APIError as e:
        return text, e.message
    return text, None


def _cohere_stream_broken(self, model, prompt):
    text = ""
    for ev in self.c.chat_stream(model=model, messages=[{"role": "user", "content": prompt}], request_options=NO_RETRY):
        if ev.type == "content-delta":
            text += ev.delta.message.content.text or ""
        if ev.type == "message-end" and ev.delta.finish_reason == "ERROR":
            return text, ev.delta.error
    return text, None


def _bedrock_stream_broken(self, model, prompt):
    text = ""
    try:
        for ev in self.c.converse_stream(modelId=model, messages=[{"role": "user", "content": [{"text": prompt}]}])["stream"]:
            if "contentBlockDelta" in ev:
                text += ev["contentBlockDelta"]["delta"].get("text", "")
    except botocore.exceptions.EventStreamError as e:
        return text, e.response["Error"]["Message"]
    return text, None


OpenAIChat.stream_broken = _openai_stream_broken
OpenAIResponses.stream_broken = _responses_stream_broken
Anthropic.stream_broken = _anthropic_stream_broken
Gemini.stream_broken = _gemini_stream_broken
Cohere.stream_broken = _cohere_stream_broken
Bedrock.stream_broken = _bedrock_stream_broken


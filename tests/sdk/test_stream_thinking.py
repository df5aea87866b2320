"""Thinking, streamed, over the 25 pairs where both sides think (every protocol but OpenAI Chat
Completions, which has no thinking in its answers): each official SDK asks for thinking its own
way, reads the stream its own way, and must see, in this order, the thinking, its signature
(wherever both protocols carry one) and the answer, exactly as the mock provider gave them.

```text
  SDK --(thinking asked for, its way)--> busbar --(egress form)--> mock: `The user said: ...`
  SDK <--thinking deltas, signature, text deltas-- busbar <--the egress protocol's stream--
```

The mock thinks only when its request asks for reasoning, and signs its thinking with a hash of
the text (codec/src/mock/reply.rs), so the signature a client sees is checked to the byte. The
mock accepts any request it can read; what a real provider would refuse is checked here, on the
request busbar sent upstream.
"""

import base64
import json

import pytest
from google.genai import types as gtypes

import adapters
from conftest import CLIENT_KEY, EGRESS

PROMPT = "alpha beta"
# What the mock says to PROMPT: its thinking, then the prompt padded to 8 tokens (`--tokens 8`).
THOUGHT = "The user said: alpha beta"
ANSWER = "alpha beta busbar is a thread per core"

THINKERS = [p for p in EGRESS if p != "openai"]
# Protocols whose streams carry a thinking block's signature; Cohere's thinking has none.
SIGNED = {"responses", "anthropic", "gemini", "bedrock"}

# How each client protocol says the answer ended normally.
FINISHED = {
    "responses": "completed",
    "anthropic": "end_turn",
    "gemini": "STOP",
    "cohere": "COMPLETE",
    "bedrock": "end_turn",
}

# Where the mock's stream request lands, per egress.
UPSTREAM_PATH = {
    "responses": "/v1/responses",
    "anthropic": "/v1/messages",
    "gemini": "/v1beta/models/up-gemini:streamGenerateContent?alt=sse",
    "cohere": "/v2/chat",
    "bedrock": "/model/up-bedrock/converse-stream",
}


def mock_signature(text):
    """The mock's signature on `text`: base64 of `mocksig` and the FNV-1a hash of the text in
    hex (as `thinking_signature` in codec/src/mock/reply.rs)."""
    h = 0xCBF29CE484222325
    for b in text.encode():
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return base64.b64encode(f"mocksig{h:016x}".encode()).decode()


SIGNATURE = mock_signature(THOUGHT)


# Each SDK streams PROMPT asking for thinking, and returns what it saw: the stream's pieces in
# arrival order, as ("thinking" | "signature" | "text", value); the SDK's own assembly of the
# whole answer in the same form, where the SDK assembles one (None elsewhere); and how the
# answer ended.

def stream_responses(base, model):
    c = adapters.OpenAIResponses(base, CLIENT_KEY).c
    seen = []
    with c.responses.stream(model=model, input=PROMPT, reasoning={"effort": "low", "summary": "auto"},
                            include=["reasoning.encrypted_content"]) as s:
        for ev in s:
            if ev.type == "response.reasoning_summary_text.delta":
                seen.append(("thinking", ev.delta))
            elif ev.type == "response.output_text.delta":
                seen.append(("text", ev.delta))
            elif ev.type == "response.output_item.done" and ev.item.type == "reasoning" and ev.item.encrypted_content:
                seen.append(("signature", ev.item.encrypted_content))
        final = s.get_final_response()
    whole = []
    for item in final.output:
        if item.type == "reasoning":
            whole.append(("thinking", "".join(p.text for p in item.summary)))
            if item.encrypted_content:
                whole.append(("signature", item.encrypted_content))
        elif item.type == "message":
            whole.append(("text", "".join(p.text for p in item.content if p.type == "output_text")))
    return seen, whole, final.status


def stream_anthropic(base, model):
    c = adapters.Anthropic(base, CLIENT_KEY).c
    seen = []
    with c.messages.stream(model=model, max_tokens=2048, thinking={"type": "enabled", "budget_tokens": 1024},
                           messages=[{"role": "user", "content": PROMPT}]) as s:
        for ev in s:
            if ev.type == "thinking":
                seen.append(("thinking", ev.thinking))
            elif ev.type == "signature":
                seen.append(("signature", ev.signature))
            elif ev.type == "text":
                seen.append(("text", ev.text))
        final = s.get_final_message()
    whole = []
    for b in final.content:
        if b.type == "thinking":
            whole.append(("thinking", b.thinking))
            if getattr(b, "signature", None):
                whole.append(("signature", b.signature))
        elif b.type == "text":
            whole.append(("text", b.text))
    return seen, whole, final.stop_reason


def stream_gemini(base, model):
    g = adapters.Gemini(base, CLIENT_KEY)
    thinking = gtypes.ThinkingConfig(include_thoughts=True, thinking_budget=1024)
    cfg = gtypes.GenerateContentConfig(thinking_config=thinking)
    seen, finish = [], None
    for chunk in g.c.models.generate_content_stream(model=model, contents=PROMPT, config=cfg):
        cand = chunk.candidates[0]
        for p in (cand.content.parts if cand.content else None) or []:
            if p.thought_signature:
                # The SDK hands the signature over decoded from its base64.
                seen.append(("signature", base64.b64encode(p.thought_signature).decode()))
            if p.text:
                seen.append(("thinking" if p.thought else "text", p.text))
        finish = cand.finish_reason or finish
    return seen, None, finish.name if finish else None


def stream_cohere(base, model):
    c = adapters.Cohere(base, CLIENT_KEY).c
    seen, finish = [], None
    for ev in c.chat_stream(model=model, messages=[{"role": "user", "content": PROMPT}], thinking={"type": "enabled"},
                            request_options=adapters.NO_RETRY):
        if ev.type in ("content-start", "content-delta"):
            content = ev.delta.message.content
            if getattr(content, "thinking", None):
                seen.append(("thinking", content.thinking))
            if getattr(content, "text", None):
                seen.append(("text", content.text))
        elif ev.type == "message-end":
            finish = ev.delta.finish_reason
    return seen, None, finish


def stream_bedrock(base, model):
    c = adapters.Bedrock(base, CLIENT_KEY).c
    r = c.converse_stream(modelId=model, messages=[{"role": "user", "content": [{"text": PROMPT}]}],
                          additionalModelRequestFields={"thinking": {"type": "enabled", "budget_tokens": 1024}})
    seen, stop = [], None
    for ev in r["stream"]:
        d = ev.get("contentBlockDelta", {}).get("delta", {})
        rc = d.get("reasoningContent", {})
        if rc.get("text"):
            seen.append(("thinking", rc["text"]))
        if rc.get("signature"):
            seen.append(("signature", rc["signature"]))
        if d.get("text"):
            seen.append(("text", d["text"]))
        stop = ev.get("messageStop", {}).get("stopReason", stop)
    return seen, None, stop


STREAM = {
    "responses": stream_responses,
    "anthropic": stream_anthropic,
    "gemini": stream_gemini,
    "cohere": stream_cohere,
    "bedrock": stream_bedrock,
}


def joined(seen):
    """The pieces with each run of one kind joined: what a reader of the stream ends up with."""
    out = []
    for kind, value in seen:
        if out and out[-1][0] == kind:
            out[-1] = (kind, out[-1][1] + value)
        else:
            out.append((kind, value))
    return out


def pairs():
    return [pytest.param(client, egress, id=f"{client}-via-{egress}") for client in THINKERS for egress in THINKERS]


@pytest.mark.parametrize(("client", "egress"), pairs())
def test_thinking_streams_before_the_answer_with_its_signature(client, egress, matrix):
    """The client's SDK sees the mock's thinking, then its signature (exactly the mock's, when
    both protocols carry one; none invented when either does not), then the answer, and a normal
    end; where the SDK assembles the whole answer from the stream, it agrees."""
    seen, whole, finish = STREAM[client](matrix.url, f"via-{egress}")
    signed = client in SIGNED and egress in SIGNED
    expected = [("thinking", THOUGHT)] + ([("signature", SIGNATURE)] if signed else []) + [("text", ANSWER)]
    assert joined(seen) == expected, seen
    # Thinking and answer both arrive as deltas, not only whole at the end.
    assert sum(kind == "text" for kind, _ in seen) > 1, seen
    if whole is not None:
        assert whole == expected
    assert finish == FINISHED[client]


def camel(key):
    head, *rest = key.split("_")
    return head + "".join(w.title() for w in rest)


def asks_for_thinking(egress, body):
    """The reasons a real `egress` provider would not think (or would refuse the request) for
    `body`, busbar's streamed request to it; empty when it asks for thinking properly."""
    why = []
    if egress == "anthropic":
        t = body.get("thinking") or {}
        budget, most = t.get("budget_tokens"), body.get("max_tokens")
        if t.get("type") != "enabled" or not isinstance(budget, int):
            why.append(f"thinking not enabled with a budget: {t}")
        # "budget_tokens: must be >= 1024 and less than max_tokens" (Messages API reference).
        elif not (1024 <= budget < (most or 0)):
            why.append(f"thinking.budget_tokens {budget} is not in [1024, max_tokens {most})")
    elif egress == "bedrock":
        # Anthropic's switch in additionalModelRequestFields, or Converse's own effort.
        t = (body.get("additionalModelRequestFields") or {}).get("thinking") or {}
        effort = (body.get("outputConfig") or {}).get("effort")
        most = (body.get("inferenceConfig") or {}).get("maxTokens")
        budget = t.get("budget_tokens")
        if t.get("type") == "enabled":
            if not isinstance(budget, int) or budget < 1024 or (most is not None and budget >= most):
                why.append(f"thinking.budget_tokens {budget} is not in [1024, maxTokens {most})")
        elif effort not in ("low", "medium", "high", "xhigh", "max"):
            why.append(f"neither thinking nor an effort: {body}")
    elif egress == "responses":
        r = body.get("reasoning") or {}
        if r.get("effort") not in ("minimal", "low", "medium", "high", "xhigh"):
            why.append(f"no reasoning effort: {r}")
        if r.get("summary") != "auto":
            why.append(f"summaries not asked for: {r}")
        if "reasoning.encrypted_content" not in (body.get("include") or []):
            why.append(f"encrypted reasoning not included: {body.get('include')}")
    elif egress == "gemini":
        # The API takes either spelling of a key; the SDK sends snake_case, busbar camelCase.
        sent = (body.get("generationConfig") or {}).get("thinkingConfig") or {}
        t = {camel(k): v for k, v in sent.items()}
        if t.get("includeThoughts") is not True:
            why.append(f"thoughts not included: {t}")
        if t.get("thinkingBudget") == 0:
            why.append(f"thinking off: {t}")
    elif egress == "cohere":
        t = body.get("thinking") or {}
        if t.get("type") != "enabled":
            why.append(f"thinking not enabled: {t}")
    return why


@pytest.mark.parametrize(("client", "egress"), pairs())
def test_upstream_stream_request_asks_for_thinking(client, egress, matrix, mock):
    """busbar's request to the provider streams and asks for thinking in the provider's own
    terms, in a form a real provider accepts (the mock accepts anything it can read)."""
    mock.clear()
    STREAM[client](matrix.url, f"via-{egress}")
    sent = mock.requests()
    assert [r["path"] for r in sent] == [UPSTREAM_PATH[egress]]
    body = json.loads(sent[0]["body"])
    if egress in ("responses", "anthropic", "cohere"):
        assert body["stream"] is True, body
    assert asks_for_thinking(egress, body) == [], json.dumps(body)

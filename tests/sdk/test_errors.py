"""A provider error of every family reaches each official SDK as that SDK's own error class:
the status is kept and the body is rewritten into the caller's error shape. The provider speaks
another protocol than the client (errors are steered by the mock's `mock-status=NNN` marker)."""

import anthropic
import botocore.exceptions
import cohere
import cohere.core.api_error
import cohere.errors
import openai
import pytest
from google import genai

import adapters
from conftest import CLIENT_KEY

STATUSES = [400, 401, 403, 404, 429, 500, 503, 529]

EXPECTED = {
    "openai": {400: openai.BadRequestError, 401: openai.AuthenticationError, 403: openai.PermissionDeniedError,
               404: openai.NotFoundError, 429: openai.RateLimitError, 500: openai.InternalServerError,
               503: openai.InternalServerError, 529: openai.InternalServerError},
    "anthropic": {400: anthropic.BadRequestError, 401: anthropic.AuthenticationError, 403: anthropic.PermissionDeniedError,
                  404: anthropic.NotFoundError, 429: anthropic.RateLimitError, 500: anthropic.InternalServerError,
                  503: anthropic.ServiceUnavailableError, 529: anthropic.OverloadedError},
    "cohere": {400: cohere.errors.BadRequestError, 401: cohere.errors.UnauthorizedError, 403: cohere.errors.ForbiddenError,
               404: cohere.errors.NotFoundError, 429: cohere.errors.TooManyRequestsError,
               500: cohere.errors.InternalServerError, 503: cohere.errors.ServiceUnavailableError},
}
BEDROCK_CODES = {400: "ValidationException", 401: "UnrecognizedClientException", 403: "AccessDeniedException",
                 404: "ResourceNotFoundException", 429: "ThrottlingException", 500: "InternalServerException",
                 503: "ServiceUnavailableException", 529: "ServiceUnavailableException"}


@pytest.mark.parametrize("status", STATUSES)
@pytest.mark.parametrize("sdk", adapters.ALL, ids=lambda a: a.name)
def test_error_families_become_the_sdks_own_classes(sdk, status, matrix):
    client = sdk(matrix.url, CLIENT_KEY)
    model = "via-openai" if sdk.name == "anthropic" else "via-anthropic"
    with pytest.raises(Exception) as e:
        client.text(model, f"please fail: mock-status={status}")
    err = e.value
    name = "openai" if sdk.name == "responses" else sdk.name
    if name in EXPECTED:
        want = EXPECTED[name].get(status)
        if want is None:  # a status the SDK has no class for: its generic API error
            assert isinstance(err, cohere.core.api_error.ApiError) and err.status_code == status, repr(err)
        else:
            assert type(err) is want, f"{status}: {type(err).__name__}"
    elif name == "gemini":
        cls = genai.errors.ClientError if status < 500 else genai.errors.ServerError
        assert isinstance(err, cls) and err.code == status, repr(err)
    elif name == "bedrock":
        assert isinstance(err, botocore.exceptions.ClientError), repr(err)
        assert err.response["Error"]["Code"] == BEDROCK_CODES[status]
        assert err.response["ResponseMetadata"]["HTTPStatusCode"] == status
    assert "mock: status" in str(err), "the provider's message comes through"

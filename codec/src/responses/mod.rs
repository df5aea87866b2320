//! OpenAI Responses (`POST /v1/responses`) <-> IR. (Being written.)

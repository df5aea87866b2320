//! Cohere v2 chat (`POST /v2/chat`) <-> IR. (Being written.)

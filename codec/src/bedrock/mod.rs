//! AWS Bedrock Converse (`POST /model/{id}/converse`) <-> IR. (Being written.)

//! Google Gemini (`generateContent`) <-> IR. (Being written.)

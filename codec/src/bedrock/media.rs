//! Converse media (`image`, `document`, `audio`) <-> IR media, shared by requests and responses.
//!
//! ```text
//!   {format, source{bytes}}        <-> Media::Base64{media_type: <mime of format>, data}
//!   {format, source{s3Location}}   <-> Media::Url{url: s3://..., media_type}
//!   document {source{text}}        <-> Media::Text
//! ```
//!
//! `bytes` is base64 text in Converse JSON; it is carried as received, never decoded. An
//! `s3Location` with a `bucketOwner`, a document `content` source, or a format outside the
//! documented lists is not mapped here: the caller keeps such a block raw.

use crate::ir::Media;
use serde_json::{Map, Value, json};

/// Which media list a block draws its formats from.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Image,
    Document,
    Audio,
}

const IMAGE: [&str; 4] = ["png", "jpeg", "gif", "webp"];

const AUDIO: [&str; 15] = [
    "mp3", "opus", "wav", "aac", "flac", "mp4", "ogg", "mkv", "mka", "x-aac", "m4a", "mpeg",
    "mpga", "pcm", "webm",
];

const DOCUMENT: [(&str, &str); 9] = [
    ("pdf", "application/pdf"),
    ("csv", "text/csv"),
    ("doc", "application/msword"),
    (
        "docx",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ),
    ("xls", "application/vnd.ms-excel"),
    (
        "xlsx",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ),
    ("html", "text/html"),
    ("txt", "text/plain"),
    ("md", "text/markdown"),
];

/// The MIME type of a Converse `format`, or `None` when the format is not documented.
pub(super) fn mime_of(kind: Kind, format: &str) -> Option<String> {
    match kind {
        Kind::Image => IMAGE.contains(&format).then(|| format!("image/{format}")),
        Kind::Audio => AUDIO.contains(&format).then(|| format!("audio/{format}")),
        Kind::Document => DOCUMENT
            .iter()
            .find(|(f, _)| *f == format)
            .map(|(_, m)| m.to_string()),
    }
}

/// The Converse `format` of a MIME type, or `None` when Converse has no such format.
pub(super) fn format_of(kind: Kind, mime: &str) -> Option<&'static str> {
    let mime = mime.split(';').next().unwrap_or("").trim();
    match kind {
        Kind::Image => {
            let f = mime.strip_prefix("image/")?;
            let f = if f == "jpg" { "jpeg" } else { f };
            IMAGE.iter().copied().find(|x| *x == f)
        }
        Kind::Audio => {
            let f = mime.strip_prefix("audio/")?;
            AUDIO.iter().copied().find(|x| *x == f)
        }
        Kind::Document => DOCUMENT.iter().find(|(_, m)| *m == mime).map(|(f, _)| *f),
    }
}

/// The format an S3 object's name suggests, for URLs that come without a MIME type.
fn format_of_uri(kind: Kind, uri: &str) -> Option<&'static str> {
    let ext = uri.rsplit_once('.')?.1.to_ascii_lowercase();
    match kind {
        Kind::Image => format_of(kind, &format!("image/{ext}")),
        Kind::Audio => format_of(kind, &format!("audio/{ext}")),
        Kind::Document => DOCUMENT.iter().find(|(f, _)| *f == ext).map(|(f, _)| *f),
    }
}

/// A Converse `source` -> IR media. `mime` is the MIME type of the block's `format`.
pub(super) fn source_of(kind: Kind, src: &Value, mime: Option<String>) -> Option<Media> {
    let o = src.as_object()?;
    if o.len() != 1 {
        return None;
    }
    let (k, v) = o.iter().next()?;
    match k.as_str() {
        "bytes" => Some(Media::Base64 {
            media_type: mime?,
            data: v.as_str()?.to_string(),
        }),
        "s3Location" => {
            let s3 = v.as_object()?;
            if s3.len() != 1 {
                return None; // a bucketOwner has no IR home: the block stays raw
            }
            let uri = s3.get("uri")?.as_str()?;
            // Only s3:// URLs are written back as s3Location.
            uri.starts_with("s3://").then(|| Media::Url {
                url: uri.to_string(),
                media_type: mime,
            })
        }
        "text" if kind == Kind::Document => Some(Media::Text {
            text: v.as_str()?.to_string(),
            media_type: mime,
        }),
        _ => None,
    }
}

/// IR media -> (`format`, `source`) for a Converse block, or `None` when Converse cannot take
/// it (an http URL, a provider file id, a MIME type outside the block's format list).
pub(super) fn source_json(kind: Kind, m: &Media) -> Option<(Option<&'static str>, Value)> {
    match m {
        Media::Base64 { media_type, data } => {
            let f = format_of(kind, media_type)?;
            Some((Some(f), json!({"bytes": data})))
        }
        Media::Url { url, media_type } if url.starts_with("s3://") => {
            let f = media_type
                .as_deref()
                .and_then(|t| format_of(kind, t))
                .or_else(|| format_of_uri(kind, url));
            if f.is_none() && kind != Kind::Document {
                return None;
            }
            Some((f, json!({"s3Location": {"uri": url}})))
        }
        Media::Text { text, media_type } if kind == Kind::Document => {
            let f = media_type.as_deref().and_then(|t| format_of(kind, t));
            Some((f, json!({"text": text})))
        }
        Media::Url { .. } | Media::FileId { .. } | Media::Text { .. } => None,
    }
}

/// A `{format, source}` object (plus the caller's own members), format first when known.
pub(super) fn media_object(format: Option<&str>, source: Value) -> Map<String, Value> {
    let mut o = Map::new();
    if let Some(f) = format {
        o.insert("format".into(), json!(f));
    }
    o.insert("source".into(), source);
    o
}

/// A document name Converse accepts (letters, digits, single spaces, hyphens, parentheses,
/// square brackets): other characters become hyphens. A name Converse gave stays as it was.
pub(super) fn document_name(title: &str) -> String {
    let mut out = String::with_capacity(title.len());
    for c in title.chars() {
        let c = if c.is_alphanumeric() || "-()[]".contains(c) {
            c
        } else if c.is_whitespace() {
            ' '
        } else {
            '-'
        };
        if !(c == ' ' && out.ends_with(' ')) {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_map_both_ways() {
        for kind in [Kind::Image, Kind::Document, Kind::Audio] {
            let formats: Vec<&str> = match kind {
                Kind::Image => IMAGE.to_vec(),
                Kind::Audio => AUDIO.to_vec(),
                Kind::Document => DOCUMENT.iter().map(|(f, _)| *f).collect(),
            };
            for f in formats {
                let mime = mime_of(kind, f).unwrap();
                assert_eq!(format_of(kind, &mime), Some(f), "{mime}");
            }
        }
        assert_eq!(format_of(Kind::Image, "image/jpg"), Some("jpeg"));
        assert_eq!(format_of(Kind::Image, "image/tiff"), None);
        assert_eq!(mime_of(Kind::Document, "rtf"), None);
    }

    #[test]
    fn names_are_made_acceptable() {
        assert_eq!(document_name("Q3 report (final)"), "Q3 report (final)");
        assert_eq!(document_name("report.pdf"), "report-pdf");
        assert_eq!(document_name("a  b\tc"), "a b c");
    }

    #[test]
    fn http_urls_and_file_ids_have_no_converse_form() {
        let url = Media::Url {
            url: "https://example.com/a.png".into(),
            media_type: None,
        };
        assert!(source_json(Kind::Image, &url).is_none());
        let s3 = Media::Url {
            url: "s3://bucket/a.png".into(),
            media_type: None,
        };
        assert_eq!(source_json(Kind::Image, &s3).unwrap().0, Some("png"));
        assert!(source_json(Kind::Image, &Media::FileId { id: "f".into() }).is_none());
    }
}

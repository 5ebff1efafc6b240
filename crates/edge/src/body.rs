//! Bounded request bodies: the size is checked from `Content-Length` before
//! reading, again while the stream is read, and on what a gzip body inflates
//! to; the media type and JSON are checked once, here.

use crate::errors::{ApiError, ApiResult};
use serde_json::Value;
use worker::Request;

/// 64 KB: the largest body any endpoint accepts.
pub const MAX_BODY: usize = 64 * 1024;

/// The body, read as a stream and cut off as soon as it passes `max` bytes,
/// whether or not a `Content-Length` was sent (a chunked upload is never
/// buffered whole): 413 past the limit. A body sent with
/// `Content-Encoding: gzip` (Segment's Python libraries) is inflated, and
/// `max` bounds what it inflates to: a small bomb is a 413 too.
pub async fn read_limited(req: &mut Request, max: usize) -> ApiResult<String> {
    let gzip = match req.headers().get("Content-Encoding").ok().flatten().as_deref().map(str::trim) {
        None | Some("" | "identity") => false,
        Some(e) if e.eq_ignore_ascii_case("gzip") => true,
        Some(_) => return Err(ApiError::new(415, "unsupported_encoding", "Content-Encoding: only gzip is accepted")),
    };
    // Incompressible data grows a little under gzip.
    let wire_max = if gzip { max + max / 64 + 64 } else { max };
    let bytes = read_bytes(req, wire_max, max).await?;
    let bytes = if gzip { gunzip(&bytes, max)? } else { bytes };
    String::from_utf8(bytes).map_err(|_| ApiError::bad_request("invalid_body", "the body must be UTF-8"))
}

fn too_large(max: usize) -> ApiError {
    ApiError::new(413, "payload_too_large", format!("the body must be at most {max} bytes"))
}

async fn read_bytes(req: &mut Request, wire_max: usize, max: usize) -> ApiResult<Vec<u8>> {
    use futures_util::StreamExt;
    if let Some(len) = req.headers().get("Content-Length").ok().flatten()
        && len.trim().parse::<u64>().map_or(true, |n| n > wire_max as u64)
    {
        return Err(too_large(max));
    }
    let mut bytes = Vec::new();
    // A request without a body has no stream: an empty body.
    if let Ok(mut stream) = req.stream() {
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            if bytes.len().saturating_add(chunk.len()) > wire_max {
                return Err(too_large(max));
            }
            bytes.extend_from_slice(&chunk);
        }
    }
    Ok(bytes)
}

/// Inflates a gzip body (every member), refusing output past `max` bytes.
pub fn gunzip(compressed: &[u8], max: usize) -> ApiResult<Vec<u8>> {
    use std::io::Read;
    let mut out = Vec::new();
    let mut reader = flate2::read::MultiGzDecoder::new(compressed).take(max as u64 + 1);
    reader.read_to_end(&mut out).map_err(|e| {
        ApiError::bad_request("invalid_body", format!("Content-Encoding: gzip, but the body is not: {e}"))
    })?;
    if out.len() > max {
        return Err(too_large(max));
    }
    Ok(out)
}

/// `text/plain` (what the browser sends, to avoid a preflight) or
/// `application/json`; a missing type is read as JSON.
pub fn check_json_media_type(req: &Request) -> ApiResult<()> {
    let ct = req.headers().get("Content-Type").ok().flatten().unwrap_or_default();
    let media = ct.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    if media.is_empty() || media == "text/plain" || media == "application/json" {
        Ok(())
    } else {
        Err(ApiError::new(415, "unsupported_media_type", "send text/plain or application/json"))
    }
}

pub fn parse_json(text: &str) -> ApiResult<Value> {
    serde_json::from_str(text).map_err(|e| ApiError::bad_request("invalid_json", format!("malformed JSON: {e}")))
}

//! Bounded request bodies: the size is checked from `Content-Length` before
//! reading and again while the stream is read; the media type and JSON are checked
//! once, here.

use crate::errors::{ApiError, ApiResult};
use serde_json::Value;
use worker::Request;

/// 64 KB: the largest body any endpoint accepts.
pub const MAX_BODY: usize = 64 * 1024;

/// The body, read as a stream and cut off as soon as it passes `max` bytes,
/// whether or not a `Content-Length` was sent (a chunked upload is never
/// buffered whole): 413 past the limit.
pub async fn read_limited(req: &mut Request, max: usize) -> ApiResult<String> {
    use futures_util::StreamExt;
    let too_large = || ApiError::new(413, "payload_too_large", format!("the body must be at most {max} bytes"));
    if let Some(len) = req.headers().get("Content-Length").ok().flatten()
        && len.trim().parse::<u64>().map_or(true, |n| n > max as u64)
    {
        return Err(too_large());
    }
    let mut bytes = Vec::new();
    // A request without a body has no stream: an empty body.
    if let Ok(mut stream) = req.stream() {
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            if bytes.len().saturating_add(chunk.len()) > max {
                return Err(too_large());
            }
            bytes.extend_from_slice(&chunk);
        }
    }
    String::from_utf8(bytes).map_err(|_| ApiError::bad_request("invalid_body", "the body must be UTF-8"))
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

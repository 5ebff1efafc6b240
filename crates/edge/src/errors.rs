//! The one error shape of every endpoint: `{"error": {"code", "message"}}`
//! with the matching HTTP status.

use serde_json::json;
use worker::{Response, Result};

pub fn error(status: u16, code: &str, message: &str) -> Result<Response> {
    Ok(Response::from_json(&json!({ "error": { "code": code, "message": message } }))?.with_status(status))
}

pub fn not_found() -> Result<Response> {
    error(404, "not_found", "no such route")
}

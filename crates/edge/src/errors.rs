//! The one error shape of every endpoint: `{"error": {"code", "message"}}`
//! with the matching HTTP status. Handlers return `Result<Response, ApiError>`
//! and [`reply`] turns an error into that body; an unexpected platform error
//! becomes a 500 whose details go to the log, never to the client.

use serde_json::{Value, json};
use worker::{Response, Result};

#[derive(Debug)]
pub struct ApiError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    /// Extra top-level fields (e.g. the per-event `rejected` list of a batch).
    pub extra: Option<(&'static str, Value)>,
    /// `Retry-After` seconds (429).
    pub retry_after: Option<i64>,
}

impl ApiError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into(), extra: None, retry_after: None }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(400, code, message)
    }

    pub fn with(mut self, key: &'static str, value: Value) -> Self {
        self.extra = Some((key, value));
        self
    }

    pub fn to_response(&self) -> Result<Response> {
        let mut body = json!({ "error": { "code": self.code, "message": self.message } });
        if let (Some((k, v)), Some(obj)) = (&self.extra, body.as_object_mut()) {
            obj.insert((*k).to_owned(), v.clone());
        }
        let resp = Response::from_json(&body)?.with_status(self.status);
        if let Some(secs) = self.retry_after {
            resp.headers().set("Retry-After", &secs.to_string())?;
        }
        Ok(resp)
    }
}

impl From<worker::Error> for ApiError {
    fn from(e: worker::Error) -> Self {
        worker::console_error!("internal error: {e}");
        ApiError::new(500, "internal", "internal error")
    }
}

impl From<serde_json::Error> for ApiError {
    fn from(e: serde_json::Error) -> Self {
        worker::console_error!("internal JSON error: {e}");
        ApiError::new(500, "internal", "internal error")
    }
}

pub type ApiResult<T> = std::result::Result<T, ApiError>;

/// The handler's result as the Worker's response.
pub fn reply(result: ApiResult<Response>) -> Result<Response> {
    match result {
        Ok(r) => Ok(r),
        Err(e) => e.to_response(),
    }
}

pub fn error(status: u16, code: &'static str, message: &str) -> Result<Response> {
    ApiError::new(status, code, message).to_response()
}

pub fn not_found() -> Result<Response> {
    error(404, "not_found", "no such route")
}
